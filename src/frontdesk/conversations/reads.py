"""Each agent's read state of conversations: what the inbox shows as unread.

The rule. A conversation is unread for an agent when
- they marked it unread (as in a mail client), until they read it again; or
- its newest customer message (`Conversation.last_incoming_at`) is newer than the newest
  customer message they have read (`ConversationRead.last_read_incoming_at`). With no row
  for them yet: as soon as it has any customer message.

Only customers' messages make a conversation unread: agents' replies, notes and activity
lines never do. Reading it (opening it in the workspace, `POST .../read`) or writing in it
(a reply or a note, for its author) moves the agent's position forward, never back. A row
exists only once the agent has read or marked the conversation.

Positions are kept as the `created_at` of the customer message read rather than compared by
message id: intake stamps `last_incoming_at` in the statement that touches the conversation
anyway, before its messages have ids, so no message costs an extra write. A customer message
not yet committed when the agent reads is not among those read, so it shows unread once it
lands, whatever its id or time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.service import Principal
from frontdesk.conversations.events import ConversationRead as ConversationReadEvent
from frontdesk.conversations.events import ConversationRef
from frontdesk.conversations.models import Conversation, ConversationRead, Message, MessageType
from frontdesk.conversations.schemas import ReadStateOut
from frontdesk.core.events import EventType, record_event
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.db.base import utcnow


def unread_expression() -> ColumnElement[bool]:
    """True or false (never NULL) for a conversation outer-joined with the agent's row
    (`joined_reads`): the rule above, in SQL."""
    r = ConversationRead
    return or_(
        func.coalesce(r.marked_unread, false()),
        and_(Conversation.last_incoming_at.is_not(None),
             or_(r.last_read_incoming_at.is_(None),
                 Conversation.last_incoming_at > r.last_read_incoming_at)),
    )


def joined_reads(principal: Principal) -> ColumnElement[bool]:
    """The ON clause joining a conversation to the calling agent's read row (at most one:
    the primary key is (conversation, user))."""
    return and_(ConversationRead.conversation_id == Conversation.id,
                ConversationRead.user_id == principal.user_id,
                ConversationRead.workspace_id == principal.workspace_id)


async def unread_ids(
    session: AsyncSession, principal: Principal, conversation_ids: Sequence[int]
) -> set[int]:
    """Which of these conversations are unread for the calling agent: one query for a
    whole page, never one per row."""
    if not conversation_ids:
        return set()
    rows = await session.execute(
        select(Conversation.id)
        .outerjoin(ConversationRead, joined_reads(principal))
        .where(Conversation.workspace_id == principal.workspace_id,
               Conversation.id.in_(list(conversation_ids)), unread_expression())
    )
    return set(rows.scalars())


async def read_state(
    session: AsyncSession, principal: Principal, conversation_id: int
) -> ReadStateOut:
    row = await _row(session, principal, conversation_id)
    return ReadStateOut(
        conversation_id=conversation_id,
        unread=conversation_id in await unread_ids(session, principal, [conversation_id]),
        last_read_message_id=row.last_read_message_id if row else None)


async def _row(
    session: AsyncSession, principal: Principal, conversation_id: int
) -> ConversationRead | None:
    return (await session.execute(
        select(ConversationRead).where(
            ConversationRead.workspace_id == principal.workspace_id,
            ConversationRead.conversation_id == conversation_id,
            ConversationRead.user_id == principal.user_id)
        .execution_options(populate_existing=True)
    )).scalar_one_or_none()


def _later(old: int | datetime | None, new: int | datetime | None) -> int | datetime | None:
    if old is None:
        return new
    if new is None:
        return old
    return max(old, new)  # type: ignore[type-var]


async def mark_conversation_read(
    session: AsyncSession, principal: Principal, conversation_id: int,
    up_to_message_id: int | None = None,
) -> ReadStateOut:
    """The agent has read the conversation, up to `up_to_message_id` (the newest message
    they were shown) or, by default, every message it has now. Idempotent; a position
    never moves back (an older `up_to_message_id` changes nothing), and reading clears a
    "marked unread". Records `conversation.read` (private to the agent) when that made it
    read: a position moving within what was read already (the agent's own reply) shows no
    change anywhere, and costs no event."""
    conversation = await get_in_workspace(session, Conversation, principal.workspace_id,
                                          conversation_id, what="Conversation")
    seen = select(
        func.max(Message.id),
        func.max(case((Message.message_type == MessageType.INCOMING.value,
                       Message.created_at))),
    ).where(Message.workspace_id == principal.workspace_id,
            Message.conversation_id == conversation.id)
    if up_to_message_id is not None:
        seen = seen.where(Message.id <= up_to_message_id)
    last_id, last_incoming = (await session.execute(seen)).one()
    row = await _row(session, principal, conversation.id)
    if row is not None:
        unchanged = (not row.marked_unread
                     and _later(row.last_read_message_id, last_id) == row.last_read_message_id
                     and _later(row.last_read_incoming_at, last_incoming)
                     == row.last_read_incoming_at)
        if unchanged:
            return await read_state(session, principal, conversation.id)
    elif last_id is None:
        return await read_state(session, principal, conversation.id)  # nothing to read yet
    was_unread = bool(await unread_ids(session, principal, [conversation.id]))
    await _upsert(session, principal, conversation.id, last_id, last_incoming,
                  marked_unread=False)
    return await _announce(session, principal, conversation.id, was_unread)


async def mark_conversation_unread(
    session: AsyncSession, principal: Principal, conversation_id: int
) -> ReadStateOut:
    """The agent wants to come back to it: unread for them until they read it again (their
    position stays; nobody else's read state changes)."""
    conversation = await get_in_workspace(session, Conversation, principal.workspace_id,
                                          conversation_id, what="Conversation")
    row = await _row(session, principal, conversation.id)
    if row is not None and row.marked_unread:
        return await read_state(session, principal, conversation.id)
    was_unread = bool(await unread_ids(session, principal, [conversation.id]))
    await _upsert(session, principal, conversation.id, None, None, marked_unread=True)
    return await _announce(session, principal, conversation.id, was_unread)


async def _upsert(
    session: AsyncSession, principal: Principal, conversation_id: int,
    last_id: int | None, last_incoming: datetime | None, *, marked_unread: bool,
) -> None:
    """Insert the agent's row or move it forward, in one statement: two tabs reading at
    once both succeed, and the later position wins whichever commits first."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    statement = insert(ConversationRead).values(
        conversation_id=conversation_id, user_id=principal.user_id,
        workspace_id=principal.workspace_id, last_read_message_id=last_id,
        last_read_incoming_at=last_incoming, marked_unread=marked_unread, updated_at=now)
    table, new = ConversationRead.__table__.c, statement.excluded

    def forward(column: str) -> ColumnElement[object]:
        old, given = table[column], new[column]
        return case((given.is_(None), old), (old.is_(None), given), (given > old, given),
                    else_=old)

    await session.execute(statement.on_conflict_do_update(
        index_elements=["conversation_id", "user_id"],
        set_={"last_read_message_id": forward("last_read_message_id"),
              "last_read_incoming_at": forward("last_read_incoming_at"),
              "marked_unread": true() if marked_unread else false(), "updated_at": now}))


async def _announce(
    session: AsyncSession, principal: Principal, conversation_id: int, was_unread: bool
) -> ReadStateOut:
    """The new state; when it shows differently (read, or unread again), told to the
    agent's other tabs and devices (and only to them)."""
    state = await read_state(session, principal, conversation_id)
    if state.unread != was_unread:
        record_event(session, principal.workspace_id, EventType.CONVERSATION_READ,
                     ConversationReadEvent(conversation=ConversationRef(id=conversation_id),
                                           user_id=principal.user_id, unread=state.unread,
                                           last_read_message_id=state.last_read_message_id))
    return state


async def refresh_last_incoming(session: AsyncSession, conversations: Sequence[Conversation]
                                ) -> None:
    """Recompute when each one's newest customer message arrived, after messages moved
    between conversations (merge, move, split)."""
    for conversation in conversations:
        conversation.last_incoming_at = (await session.execute(
            select(func.max(Message.created_at)).where(
                Message.workspace_id == conversation.workspace_id,
                Message.conversation_id == conversation.id,
                Message.message_type == MessageType.INCOMING.value)
        )).scalar_one_or_none()
