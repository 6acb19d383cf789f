"""Conversations: the only place that changes conversations, messages and tags
(apart from intake, which stores inbound messages on the group-commit writer)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    SQLColumnExpression,
    and_,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Role, Team
from frontdesk.accounts.service import Principal, get_member
from frontdesk.channels.models import Inbox
from frontdesk.contacts.models import Contact
from frontdesk.conversations import reads
from frontdesk.conversations.events import ConversationEvent, ReplyCreated
from frontdesk.conversations.models import (
    PRIORITY_RANK_SQL,
    Conversation,
    ConversationRead,
    ConversationStatus,
    ConversationTag,
    DeliveryStatus,
    Message,
    MessageType,
    Priority,
    SenderType,
    Tag,
)
from frontdesk.conversations.schemas import (
    AssignIn,
    ConversationForUserOut,
    ConversationOut,
    ConversationSort,
    ConversationUpdate,
    MessageOrder,
    MessageOut,
    ReplyIn,
    StatusIn,
)
from frontdesk.conversations.uploads import resolve_uploads
from frontdesk.core.activity import record_activity
from frontdesk.core.errors import Conflict, Forbidden, InvalidInput
from frontdesk.core.events import EventType, record_event
from frontdesk.core.ids import is_storable_id
from frontdesk.core.pagination import (
    cursor_id,
    cursor_time,
    decode_cursor,
    decode_id_cursor,
    encode_cursor,
)
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.db import search
from frontdesk.db.base import utcnow


@dataclass
class ConversationFilters:
    status: list[ConversationStatus] | None = None
    inbox_id: int | None = None
    channel: str | None = None  # the inbox's channel: "api", "email"...
    assignee: str | None = None  # a user id, "me" or "none"
    team_id: int | None = None
    tag: str | None = None
    priority: list[Priority] | None = None
    q: str | None = None
    unread: bool | None = None  # for the calling agent (conversations.reads)
    automatic: bool | None = None  # opened by automatic mail (Conversation.automatic)


_USER_ID = re.compile(r"[0-9]{1,19}")


def _assignee_id(assignee: str) -> int:
    if _USER_ID.fullmatch(assignee) is None or not is_storable_id(int(assignee)):
        raise InvalidInput("assignee is a user id, 'me' or 'none'", code="invalid_filter",
                           details=[{"field": "query.assignee",
                                     "message": "a user id, 'me' or 'none'"}])
    return int(assignee)


def _like(q: str) -> str:
    # ILIKE folds case itself (lower() on both sides on SQLite), for every script.
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def tags_by_conversation(
    session: AsyncSession, conversation_ids: Sequence[int]
) -> dict[int, list[str]]:
    if not conversation_ids:
        return {}
    rows = await session.execute(
        select(ConversationTag.conversation_id, Tag.name)
        .join(Tag, Tag.id == ConversationTag.tag_id)
        .where(ConversationTag.conversation_id.in_(conversation_ids))
        .order_by(Tag.name)
    )
    found: dict[int, list[str]] = {}
    for conversation_id, name in rows.all():
        found.setdefault(conversation_id, []).append(name)
    return found


async def to_out(session: AsyncSession, conversation: Conversation) -> ConversationOut:
    return (await to_out_many(session, [conversation]))[0]


async def to_out_many(
    session: AsyncSession, conversations: Sequence[Conversation]
) -> list[ConversationOut]:
    tags = await tags_by_conversation(session, [c.id for c in conversations])
    out = []
    for c in conversations:
        item = ConversationOut.model_validate(c)
        item.tags = tags.get(c.id, [])
        out.append(item)
    return out


async def to_user_out_many(
    session: AsyncSession, principal: Principal, conversations: Sequence[Conversation]
) -> list[ConversationForUserOut]:
    """The conversations with the calling agent's read state (one query for all of them)."""
    outs = await to_out_many(session, conversations)
    unread = await reads.unread_ids(session, principal, [c.id for c in conversations])
    return [ConversationForUserOut(**out.model_dump(), unread=out.id in unread) for out in outs]


async def _filtered(
    session: AsyncSession, principal: Principal, filters: ConversationFilters
) -> Select[Conversation]:
    """The workspace's conversations that pass `filters`, unordered."""
    ws = principal.workspace_id
    stmt = select(Conversation).where(Conversation.workspace_id == ws)
    if filters.status:
        stmt = stmt.where(Conversation.status.in_([s.value for s in filters.status]))
    if filters.inbox_id is not None:
        stmt = stmt.where(Conversation.inbox_id == filters.inbox_id)
    if filters.channel:
        stmt = stmt.where(Conversation.inbox_id.in_(
            select(Inbox.id).where(Inbox.workspace_id == ws, Inbox.channel == filters.channel)))
    if filters.assignee == "me":
        stmt = stmt.where(Conversation.assignee_id == principal.user_id)
    elif filters.assignee == "none":
        stmt = stmt.where(Conversation.assignee_id.is_(None))
    elif filters.assignee is not None:
        stmt = stmt.where(Conversation.assignee_id == _assignee_id(filters.assignee))
    if filters.team_id is not None:
        stmt = stmt.where(Conversation.team_id == filters.team_id)
    if filters.priority:
        stmt = stmt.where(Conversation.priority.in_([p.value for p in filters.priority]))
    if filters.tag:
        stmt = stmt.where(
            exists().where(
                ConversationTag.conversation_id == Conversation.id,
                ConversationTag.tag_id == Tag.id,
                Tag.workspace_id == ws,
                Tag.name == filters.tag.strip().lower(),
            )
        )
    if filters.automatic is not None:
        stmt = stmt.where(Conversation.automatic.is_(filters.automatic))
    if filters.q and filters.q.strip():
        stmt = stmt.where(await _text_filter(session, ws, filters.q.strip()))
    if filters.unread is not None:
        # An outer join to at most one row each (the agent's), so the list still walks its
        # sort index and looks the row up by primary key as it goes.
        unread = reads.unread_expression()
        stmt = stmt.outerjoin(ConversationRead, reads.joined_reads(principal)).where(
            unread if filters.unread else ~unread)
    return stmt


# Up to this many matching rows the inbox collects the matches first (from the trigram
# indexes on PostgreSQL) and keeps the view's conversations among them. Beyond it the term
# is common, and walking the view in its order finds a page sooner than collecting every
# match would ("tracking" is in 40% of the benchmark's million messages: ~1 s to collect).
FEW_TEXT_MATCHES = 500


async def _text_filter(session: AsyncSession, workspace_id: int, q: str) -> ColumnElement[bool]:
    """The condition "its subject, contact or a message contains `q`", in the shape that
    is fast for how common `q` is: a bounded probe of the indexed matches decides."""
    short_term_indexes = session.get_bind().dialect.name == "postgresql"
    matches = _text_matches(workspace_id, q, short_term_indexes=short_term_indexes).subquery()
    found = (await session.execute(
        select(matches.c.id).limit(FEW_TEXT_MATCHES + 1))).scalars().all()
    if len(found) <= FEW_TEXT_MATCHES:
        return Conversation.id.in_(sorted(set(found)))

    # A common term: each conversation walked is tested with plain ILIKEs on its own rows.
    def contains(column: SQLColumnExpression[Any]) -> ColumnElement[bool]:
        return _contains(column, q, short_term_index=False)

    return or_(
        contains(Conversation.subject),
        # OFFSET 0 keeps each EXISTS a lookup per conversation walked (its contact by
        # primary key, its messages by ix_messages_conversation): PostgreSQL cannot turn
        # such an EXISTS into one hash of every matching row, which it chose for terms in a
        # few percent of the messages (0.8 s for 退款) or in every contact's e-mail ("x").
        exists(select(Contact.id).where(
            Contact.id == Conversation.contact_id,
            or_(contains(Contact.name), contains(Contact.email), contains(Contact.phone)),
        ).offset(0)),
        exists(select(Message.id).where(
            Message.conversation_id == Conversation.id,
            contains(Message.content),
        ).offset(0)),
    )


def _text_matches(
    workspace_id: int, q: str, *, short_term_indexes: bool
) -> CompoundSelect[tuple[int]]:
    """Ids of the workspace's conversations whose subject, contact or a message contains `q`
    (an id once per matching row). `short_term_indexes`: the database has the indexes of
    migration 0016 (PostgreSQL).

    One branch per searched table rather than an OR of EXISTS on each conversation: each
    branch is a plain ILIKE that PostgreSQL answers from its trigram index, or from its
    short-term index for a term of one or two characters (db/search.py), while an OR
    spanning tables can use none and reads every message."""
    short = short_term_indexes and search.is_short_term(q)

    def contains(column: SQLColumnExpression[Any]) -> ColumnElement[bool]:
        return _contains(column, q, short_term_index=short)

    contacts = select(Contact.id).where(
        Contact.workspace_id == workspace_id,
        or_(contains(Contact.name), contains(Contact.email), contains(Contact.phone)),
    )
    return union_all(
        select(Conversation.id).where(Conversation.workspace_id == workspace_id,
                                      contains(Conversation.subject)),
        select(Conversation.id).where(Conversation.workspace_id == workspace_id,
                                      Conversation.contact_id.in_(contacts)),
        select(Message.conversation_id).where(Message.workspace_id == workspace_id,
                                              contains(Message.content)),
    )


def _contains(column: SQLColumnExpression[Any], q: str, *,
              short_term_index: bool) -> ColumnElement[bool]:
    """`column ILIKE '%q%'`; with `short_term_index` (a short term, on PostgreSQL) in the
    shape the column's short-term index answers."""
    pattern = _like(q)
    if not short_term_index:
        return column.ilike(pattern, escape="\\")
    return and_(search.short_pairs_match(column, q),
                search.unindexed(column).ilike(pattern, escape="\\"))


# The same SQL text as the index on it (models.PRIORITY_RANK_SQL), never bound parameters:
# only an identical expression lets the database read the order from the index.
PRIORITY_RANK = literal_column(PRIORITY_RANK_SQL, Integer)
_RANKS = {"urgent": 4, "high": 3, "medium": 2, "low": 1}


def priority_rank(priority: str) -> int:
    """What PRIORITY_RANK computes, for one conversation."""
    return _RANKS.get(priority, 0)


async def list_conversations(
    session: AsyncSession, principal: Principal, filters: ConversationFilters,
    *, cursor: str | None, limit: int, sort: ConversationSort = ConversationSort.NEWEST,
) -> tuple[list[Conversation], str | None]:
    """A page of conversations in `sort` order. Pages are keyset pages (the cursor holds the
    sort key of the last row), each one index range scan (see the indexes on Conversation)."""
    stmt = await _filtered(session, principal, filters)
    c = Conversation
    if sort is ConversationSort.WAITING:
        return await _list_by_waiting(session, stmt, cursor, limit)
    if sort is ConversationSort.PRIORITY:
        order: tuple[Any, ...] = (PRIORITY_RANK, c.last_activity_at, c.id)
        if cursor:
            rank, at, after_id = _cursor(cursor, sort)
            stmt = stmt.where(tuple_(*order) < (rank, at, after_id))
        stmt = stmt.order_by(*(column.desc() for column in order))
    else:
        order = (c.last_activity_at, c.id)
        newest = sort is ConversationSort.NEWEST
        if cursor:
            at, after_id = _cursor(cursor, sort)
            key = tuple_(*order)
            stmt = stmt.where(key < (at, after_id) if newest else key > (at, after_id))
        stmt = stmt.order_by(*(column.desc() if newest else column.asc() for column in order))
    rows = list((await session.execute(stmt.limit(limit + 1))).scalars())
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        at_text = last.last_activity_at.isoformat()
        next_cursor = (encode_cursor(sort.value, priority_rank(last.priority), at_text, last.id)
                       if sort is ConversationSort.PRIORITY
                       else encode_cursor(sort.value, at_text, last.id))
    return rows[:limit], next_cursor


async def _list_by_waiting(
    session: AsyncSession, stmt: Select[Conversation], cursor: str | None, limit: int
) -> tuple[list[Conversation], str | None]:
    """Waiting customers, longest first, then the conversations nobody waits on (by id):
    two index range scans rather than one NULLS LAST sort, which neither database can
    read from an index in both directions alike."""
    c = Conversation
    since, after_id = _cursor(cursor, ConversationSort.WAITING) if cursor else (None, 0)
    rows: list[Conversation] = []
    if not cursor or since is not None:
        waiting = stmt.where(c.waiting_since.is_not(None))
        if since is not None:
            waiting = waiting.where(tuple_(c.waiting_since, c.id) > (since, after_id))
        rows = list((await session.execute(
            waiting.order_by(c.waiting_since, c.id).limit(limit + 1))).scalars())
        after_id = 0
    if len(rows) <= limit:
        rest = stmt.where(c.waiting_since.is_(None), c.id > after_id)
        rows += list((await session.execute(
            rest.order_by(c.id).limit(limit + 1 - len(rows)))).scalars())
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        waited = last.waiting_since.isoformat() if last.waiting_since else None
        next_cursor = encode_cursor(ConversationSort.WAITING.value, waited, last.id)
    return rows[:limit], next_cursor


def _cursor(cursor: str, sort: ConversationSort) -> tuple[Any, ...]:
    """The sort key in a cursor of `sort` (a cursor of another order is refused)."""
    arity = 4 if sort is ConversationSort.PRIORITY else 3
    key = decode_cursor(cursor, arity)
    if key[0] != sort.value:
        raise InvalidInput("The cursor belongs to another sort order", code="invalid_cursor",
                           details=[{"field": "query.cursor",
                                     "message": "not a cursor of this sort order"}])
    if sort is ConversationSort.PRIORITY:
        rank = key[1]
        if type(rank) is not int or not 0 <= rank <= max(_RANKS.values()):
            raise InvalidInput("The cursor is not one this API gave out",
                               code="invalid_cursor",
                               details=[{"field": "query.cursor",
                                         "message": "not a cursor of this list"}])
        return rank, cursor_time(key[2]), cursor_id(key[3])
    if sort is ConversationSort.WAITING and key[1] is None:
        return None, cursor_id(key[2])
    return cursor_time(key[1]), cursor_id(key[2])


async def count_conversations(
    session: AsyncSession, principal: Principal, filters: ConversationFilters
) -> int:
    stmt = (await _filtered(session, principal, filters)).with_only_columns(
        func.count()).order_by(None)
    return int((await session.execute(stmt)).scalar_one())


async def get_conversation(
    session: AsyncSession, principal: Principal, conversation_id: int, *, for_update: bool = False
) -> Conversation:
    return await get_in_workspace(
        session, Conversation, principal.workspace_id, conversation_id,
        what="Conversation", for_update=for_update,
    )


async def list_messages(
    session: AsyncSession, principal: Principal, conversation_id: int,
    *, cursor: str | None, limit: int, order: MessageOrder = MessageOrder.ASC,
) -> tuple[list[Message], str | None]:
    """A page of the thread by message id (the order messages arrived, merged ones
    included). `DESC` pages from the newest end: the latest `limit` messages, then the ones
    before them. Each order's cursors are its own (the newest-first ones are tagged)."""
    conversation = await get_conversation(session, principal, conversation_id)
    stmt = select(Message).where(
        Message.workspace_id == principal.workspace_id, Message.conversation_id == conversation.id
    )
    if order is MessageOrder.DESC:
        if cursor:
            stmt = stmt.where(Message.id < _before_cursor(cursor))
        stmt = stmt.order_by(Message.id.desc())
    else:
        if cursor:
            stmt = stmt.where(Message.id > decode_id_cursor(cursor))
        stmt = stmt.order_by(Message.id)
    rows = list((await session.execute(stmt.limit(limit + 1))).scalars())
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1].id
        next_cursor = encode_cursor("before", last) if order is MessageOrder.DESC \
            else encode_cursor(last)
    return rows[:limit], next_cursor


def _before_cursor(cursor: str) -> int:
    """The id a newest-first cursor continues before."""
    tag, before_id = decode_cursor(cursor, 2)
    if tag != "before":
        raise InvalidInput("The cursor belongs to another order", code="invalid_cursor",
                           details=[{"field": "query.cursor",
                                     "message": "not a cursor of this order"}])
    return cursor_id(before_id)


class ConversationMerged(Conflict):
    """A merged conversation is closed for good: its messages, and any reply, belong to the
    conversation it was merged into."""

    code = "conversation_merged"


def refuse_if_merged(conversation: Conversation) -> None:
    """Replies, notes and status changes go to the surviving conversation, not here."""
    if conversation.merged_into_id is not None:
        raise ConversationMerged(
            f"Conversation {conversation.id} was merged into conversation "
            f"{conversation.merged_into_id}; continue there",
            details={"conversation_id": conversation.id,
                     "merged_into_id": conversation.merged_into_id})


def _add_activity_message(
    session: AsyncSession, conversation: Conversation, principal: Principal, text: str
) -> None:
    session.add(Message(
        workspace_id=conversation.workspace_id, conversation_id=conversation.id,
        inbox_id=conversation.inbox_id, message_type=MessageType.ACTIVITY.value,
        sender_type=SenderType.USER.value, sender_user_id=principal.user_id, content=text,
        attachments=[], delivery_status=DeliveryStatus.SENT.value,
    ))


async def _emit(
    session: AsyncSession, principal: Principal, conversation: Conversation,
    type_: EventType, changes: dict[str, Any],
) -> ConversationOut:
    await session.flush()
    out = await to_out(session, conversation)
    record_event(session, principal.workspace_id, type_,
                 ConversationEvent(conversation=out, changes=changes,
                                   actor_user_id=principal.user_id))
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action=type_.value,
                    subject_type="conversation", subject_id=conversation.id, changes=changes)
    return out


async def reply_to_conversation(
    session: AsyncSession, principal: Principal, conversation_id: int, reply: ReplyIn,
    *, upload_key: bytes | None = None, marks_read: bool = True,
) -> Message:
    """An agent's reply to the customer, or a private note when `reply.private`.
    `reply.upload_ids` (files of POST /attachments) need `upload_key` to be verified.
    Writing in a conversation marks it read for its author (`marks_read`), up to the new
    message; a reply scheduled earlier does not, since its author is not looking now."""
    conversation = await get_conversation(session, principal, conversation_id, for_update=True)
    refuse_if_merged(conversation)
    if reply.upload_ids and upload_key is None:
        raise InvalidInput("Files cannot be attached here", code="uploads_not_accepted")
    uploads = resolve_uploads(upload_key, principal, reply.upload_ids) if upload_key else []
    inbox = await get_in_workspace(session, Inbox, principal.workspace_id, conversation.inbox_id,
                                   what="Inbox")
    now = utcnow()
    message_type = MessageType.NOTE if reply.private else MessageType.OUTGOING
    # The API channel's outbound messages leave as the message.created event (webhooks);
    # channels that talk to a provider start as pending until their adapter reports back.
    sent_at_once = reply.private or inbox.channel == "api"
    status = DeliveryStatus.SENT if sent_at_once else DeliveryStatus.PENDING
    message = Message(
        workspace_id=principal.workspace_id, conversation_id=conversation.id,
        inbox_id=conversation.inbox_id, message_type=message_type.value,
        sender_type=SenderType.USER.value, sender_user_id=principal.user_id,
        content=reply.content, attachments=[a.model_dump() for a in reply.attachments],
        delivery_status=status.value, created_at=now,
    )
    session.add(message)
    conversation.last_activity_at = now
    if message_type is MessageType.OUTGOING:
        if conversation.first_response_at is None:
            conversation.first_response_at = now
        conversation.waiting_since = None  # answered
    await session.flush()
    if uploads:
        # Listed after the given ones, each with its download route (the API channel's
        # receiver fetches them from there with its token).
        first = len(message.attachments) + 1
        message.attachments = [*message.attachments, *(
            {**u.as_attachment(), "url": f"/api/v1/messages/{message.id}/attachments/{first + i}"}
            for i, u in enumerate(uploads))]
        await session.flush()
    record_event(session, principal.workspace_id, EventType.MESSAGE_CREATED, ReplyCreated(
        message=MessageOut.model_validate(message),
        conversation=await to_out(session, conversation), reply_all=reply.reply_all))
    if marks_read:
        await reads.mark_conversation_read(session, principal, conversation.id, message.id)
    return message


def assignment_refusal(
    principal: Principal, current_assignee_id: int | None, assignee_id: int | None
) -> Forbidden | None:
    """Why `principal` may not hand a conversation now assigned to `current_assignee_id` to
    `assignee_id` (None: unassign), or None when they may. Agents take conversations for
    themselves or give them back, nothing more: another agent's conversation changes hands
    only by a supervisor."""
    if principal.role.at_least(Role.SUPERVISOR):
        return None
    if assignee_id not in (None, principal.user_id):
        return Forbidden("Agents can only assign conversations to themselves",
                         code="assign_to_self_only")
    if current_assignee_id not in (None, principal.user_id):
        return Forbidden("This conversation is another agent's; ask a supervisor",
                         code="not_yours")
    return None


def may_assign(
    principal: Principal, current_assignee_id: int | None, assignee_id: int | None
) -> bool:
    """The rule of `assign_conversation`, for screens that offer only what it accepts."""
    return assignment_refusal(principal, current_assignee_id, assignee_id) is None


async def assign_conversation(
    session: AsyncSession, principal: Principal, conversation_id: int, assign: AssignIn
) -> ConversationOut:
    conversation = await get_conversation(session, principal, conversation_id, for_update=True)
    refusal = assignment_refusal(principal, conversation.assignee_id, assign.assignee_id)
    if refusal is not None:
        raise refusal
    changes: dict[str, Any] = {}
    names: list[str] = []
    if assign.assignee_id is not None:
        user, _ = await get_member(session, principal.workspace_id, assign.assignee_id)
        names.append(user.name or user.email)
    if conversation.assignee_id != assign.assignee_id:
        changes["assignee_id"] = [conversation.assignee_id, assign.assignee_id]
        conversation.assignee_id = assign.assignee_id
    if assign.team_id is not None and conversation.team_id != assign.team_id:
        team = await get_in_workspace(session, Team, principal.workspace_id, assign.team_id,
                                      what="Team")
        names.append(team.name)
        changes["team_id"] = [conversation.team_id, team.id]
        conversation.team_id = team.id
    if not changes:
        return await to_out(session, conversation)
    conversation.last_activity_at = utcnow()
    text = f"Assigned to {', '.join(names)}" if names else "Unassigned"
    _add_activity_message(session, conversation, principal, text)
    return await _emit(session, principal, conversation, EventType.CONVERSATION_ASSIGNED, changes)


async def change_status(
    session: AsyncSession, principal: Principal, conversation_id: int, change: StatusIn
) -> ConversationOut:
    conversation = await get_conversation(session, principal, conversation_id, for_update=True)
    refuse_if_merged(conversation)
    snoozed_until = None
    if change.status is ConversationStatus.SNOOZED:
        if change.snoozed_until is None:
            raise InvalidInput("Snoozing needs snoozed_until", details=[
                {"field": "body.snoozed_until", "message": "required when status is snoozed"}])
        snoozed_until = change.snoozed_until
        if snoozed_until.tzinfo is None:
            raise InvalidInput("snoozed_until needs a time zone (e.g. 2030-01-01T09:00:00Z)")
        if snoozed_until <= utcnow():
            raise InvalidInput("snoozed_until must be in the future", details=[
                {"field": "body.snoozed_until", "message": "must be in the future"}])
    elif change.snoozed_until is not None:
        raise InvalidInput("snoozed_until only goes with status snoozed", details=[
            {"field": "body.snoozed_until", "message": "only goes with status snoozed"}])
    if conversation.status == change.status.value and conversation.snoozed_until == snoozed_until:
        return await to_out(session, conversation)
    changes = {"status": [conversation.status, change.status.value]}
    conversation.status = change.status.value
    conversation.snoozed_until = snoozed_until
    if change.status in (ConversationStatus.RESOLVED, ConversationStatus.CLOSED):
        conversation.waiting_since = None  # done: nobody waits on it any more
    conversation.last_activity_at = utcnow()
    _add_activity_message(session, conversation, principal, f"Status changed to {change.status}")
    return await _emit(session, principal, conversation, EventType.CONVERSATION_STATUS_CHANGED,
                       changes)


async def update_conversation(
    session: AsyncSession, principal: Principal, conversation_id: int, patch: ConversationUpdate
) -> ConversationOut:
    conversation = await get_conversation(session, principal, conversation_id, for_update=True)
    fields = patch.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    if fields.get("priority") is not None and fields["priority"] != conversation.priority:
        changes["priority"] = [conversation.priority, fields["priority"].value]
        conversation.priority = fields["priority"].value
    if "subject" in fields and fields["subject"] != conversation.subject:
        changes["subject"] = [conversation.subject, fields["subject"]]
        conversation.subject = fields["subject"]
    if fields.get("custom_fields") is not None:
        merged = {**conversation.custom_fields}
        for key, value in fields["custom_fields"].items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        if merged != conversation.custom_fields:
            changes["custom_fields"] = [conversation.custom_fields, merged]
            conversation.custom_fields = merged
    if not changes:
        return await to_out(session, conversation)
    return await _emit(session, principal, conversation, EventType.CONVERSATION_UPDATED, changes)


async def _tag_ids(session: AsyncSession, workspace_id: int, names: list[str]) -> dict[str, int]:
    existing = dict((await session.execute(
        select(Tag.name, Tag.id).where(Tag.workspace_id == workspace_id, Tag.name.in_(names))
    )).tuples().all())
    for name in names:
        if name not in existing:
            tag = Tag(workspace_id=workspace_id, name=name)
            session.add(tag)
            await session.flush()
            existing[name] = tag.id
    return existing


async def add_tags(
    session: AsyncSession, principal: Principal, conversation_id: int, names: list[str]
) -> ConversationOut:
    conversation = await get_conversation(session, principal, conversation_id, for_update=True)
    before = (await tags_by_conversation(session, [conversation.id])).get(conversation.id, [])
    new = [n for n in names if n not in before]
    if not new:
        return await to_out(session, conversation)
    ids = await _tag_ids(session, principal.workspace_id, new)
    for name in new:
        session.add(ConversationTag(conversation_id=conversation.id, tag_id=ids[name],
                                    workspace_id=principal.workspace_id))
    return await _emit(session, principal, conversation, EventType.CONVERSATION_TAGS_CHANGED,
                       {"added": new, "removed": []})


async def remove_tag(
    session: AsyncSession, principal: Principal, conversation_id: int, name: str
) -> ConversationOut:
    conversation = await get_conversation(session, principal, conversation_id, for_update=True)
    name = name.strip().lower()
    tag_id = (await session.execute(
        select(Tag.id).where(Tag.workspace_id == principal.workspace_id, Tag.name == name)
    )).scalar_one_or_none()
    if tag_id is None:
        return await to_out(session, conversation)
    result = await session.execute(
        delete(ConversationTag).where(ConversationTag.conversation_id == conversation.id,
                                      ConversationTag.tag_id == tag_id)
    )
    if not getattr(result, "rowcount", 0):
        return await to_out(session, conversation)
    return await _emit(session, principal, conversation, EventType.CONVERSATION_TAGS_CHANGED,
                       {"added": [], "removed": [name]})


async def list_workspace_tags(session: AsyncSession, principal: Principal) -> list[str]:
    rows = await session.execute(
        select(Tag.name).where(Tag.workspace_id == principal.workspace_id).order_by(Tag.name)
    )
    return list(rows.scalars())
