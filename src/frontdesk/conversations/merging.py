"""Merging conversations, and moving or splitting messages between them.

Both only ever join or divide one customer's threads: the conversations involved must be
the same contact's. Two people's conversations are refused (409 `different_contacts`)
rather than merged, because a conversation answers one person: replies go to its contact's
address, and its history is shown to agents as that person's. When two contacts turn out
to be one person, merge the contacts first (POST /contacts/{id}/merge moves all their
conversations to one contact); their conversations can then be merged here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.conversations.events import ConversationEvent
from frontdesk.conversations.models import (
    CONTINUABLE_STATUSES,
    Conversation,
    ConversationStatus,
    ConversationTag,
    Message,
    MessageType,
    Priority,
    ScheduledMessage,
    ScheduledMessageStatus,
)
from frontdesk.conversations.reads import refresh_last_incoming
from frontdesk.conversations.schemas import ConversationOut, MoveIn, MoveOut
from frontdesk.conversations.service import (
    _add_activity_message,
    _emit,
    get_conversation,
    to_out,
)
from frontdesk.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from frontdesk.core.events import EventType, record_event
from frontdesk.core.ids import is_storable_id
from frontdesk.db.base import utcnow

_PRIORITY_ORDER = [p.value for p in Priority]  # none < low < ... < urgent


async def _lock_pair(
    session: AsyncSession, principal: Principal, first_id: int, second_id: int
) -> tuple[Conversation, Conversation]:
    """Both conversations, row-locked in id order: two merges or moves between the same
    pair in opposite directions then queue instead of deadlocking."""
    if first_id == second_id:
        raise InvalidInput("A conversation cannot be merged with or moved into itself",
                           code="same_conversation")
    locked = {}
    for conversation_id in sorted((first_id, second_id)):
        locked[conversation_id] = await get_conversation(session, principal, conversation_id,
                                                         for_update=True)
    return locked[first_id], locked[second_id]


def _not_merged(c: Conversation) -> None:
    if c.merged_into_id is not None:
        raise Conflict(f"Conversation {c.id} was merged into {c.merged_into_id}; use that one",
                       code="already_merged",
                       details={"conversation_id": c.id, "merged_into_id": c.merged_into_id})


def _may_change(principal: Principal, *conversations: Conversation) -> None:
    # As with assigning: an agent works on their own and unassigned conversations; another
    # agent's conversation is folded or divided only by a supervisor.
    if principal.role.at_least(Role.SUPERVISOR):
        return
    for c in conversations:
        if c.assignee_id not in (None, principal.user_id):
            raise Forbidden(f"Conversation {c.id} is another agent's; ask a supervisor",
                            code="not_yours")


def _same_customer(a: Conversation, b: Conversation) -> None:
    _not_merged(a)
    _not_merged(b)
    if a.contact_id != b.contact_id:
        raise Conflict("These conversations belong to different contacts; merge the contacts "
                       "first if they are one person", code="different_contacts")


async def _tag_ids(session: AsyncSession, conversation_id: int) -> set[int]:
    rows = await session.execute(select(ConversationTag.tag_id)
                                 .where(ConversationTag.conversation_id == conversation_id))
    return set(rows.scalars())


async def merge_conversations(
    session: AsyncSession, principal: Principal, survivor_id: int, other_id: int
) -> ConversationOut:
    """Fold `other_id` into `survivor_id`: its messages (which then read in time order
    with the survivor's), pending scheduled replies and tags move over; it is closed,
    pointing at the survivor. Each gets an activity line."""
    # The other's waiting replies first, then the conversations: the order the sender of
    # scheduled replies takes its locks in (rows, then the conversation), so a merge and a
    # send that meet queue instead of deadlocking.
    await session.execute(
        select(ScheduledMessage.id).where(
            ScheduledMessage.workspace_id == principal.workspace_id,
            ScheduledMessage.conversation_id == other_id,
            ScheduledMessage.status == ScheduledMessageStatus.SCHEDULED.value,
        ).with_for_update()
    )
    survivor, other = await _lock_pair(session, principal, survivor_id, other_id)
    _same_customer(survivor, other)
    _may_change(principal, survivor, other)
    now = utcnow()
    ws = principal.workspace_id
    moved = await session.execute(
        update(Message).where(Message.workspace_id == ws, Message.conversation_id == other.id)
        .values(conversation_id=survivor.id).execution_options(synchronize_session=False)
    )
    await session.execute(
        update(ScheduledMessage).where(
            ScheduledMessage.workspace_id == ws, ScheduledMessage.conversation_id == other.id,
            ScheduledMessage.status == ScheduledMessageStatus.SCHEDULED.value,
        ).values(conversation_id=survivor.id).execution_options(synchronize_session=False)
    )
    new_tags = await _tag_ids(session, other.id) - await _tag_ids(session, survivor.id)
    for tag_id in sorted(new_tags):
        session.add(ConversationTag(conversation_id=survivor.id, tag_id=tag_id, workspace_id=ws))

    changes: dict[str, Any] = {"merged_conversation_id": other.id,
                               "messages_moved": int(getattr(moved, "rowcount", 0) or 0)}
    # The survivor carries on what either thread had going.
    if survivor.status not in CONTINUABLE_STATUSES and other.status in CONTINUABLE_STATUSES:
        changes["status"] = [survivor.status, ConversationStatus.OPEN.value]
        survivor.status = ConversationStatus.OPEN.value
        survivor.snoozed_until = None
    if survivor.assignee_id is None and other.assignee_id is not None:
        changes["assignee_id"] = [None, other.assignee_id]
        survivor.assignee_id = other.assignee_id
    if survivor.team_id is None and other.team_id is not None:
        changes["team_id"] = [None, other.team_id]
        survivor.team_id = other.team_id
    if _PRIORITY_ORDER.index(other.priority) > _PRIORITY_ORDER.index(survivor.priority):
        changes["priority"] = [survivor.priority, other.priority]
        survivor.priority = other.priority
    if other.first_response_at is not None and (
            survivor.first_response_at is None
            or other.first_response_at < survivor.first_response_at):
        survivor.first_response_at = other.first_response_at
    survivor.last_activity_at = now

    other_changes: dict[str, Any] = {"status": [other.status, ConversationStatus.CLOSED.value],
                                     "merged_into_id": [None, survivor.id]}
    other.status = ConversationStatus.CLOSED.value
    other.snoozed_until = None
    other.merged_into_id = survivor.id
    other.last_activity_at = now
    await refresh_last_incoming(session, [survivor, other])
    await session.flush()
    _add_activity_message(session, other, principal, f"Merged into #{survivor.id}")
    _add_activity_message(session, survivor, principal, f"Merged #{other.id} into this")
    await _emit(session, principal, other, EventType.CONVERSATION_STATUS_CHANGED, other_changes)
    return await _emit(session, principal, survivor, EventType.CONVERSATION_MERGED, changes)


async def _message_in(
    session: AsyncSession, principal: Principal, conversation: Conversation, message_id: int
) -> Message:
    message = None
    if is_storable_id(message_id):
        message = (await session.execute(select(Message).where(
            Message.id == message_id, Message.workspace_id == principal.workspace_id,
            Message.conversation_id == conversation.id,
        ))).scalar_one_or_none()
    if message is None:
        raise NotFound(f"Message {message_id} was not found in conversation {conversation.id}")
    if message.message_type == MessageType.ACTIVITY.value:
        raise InvalidInput("Activity lines stay with their conversation; move a message",
                           code="not_movable")
    return message


async def move_messages(
    session: AsyncSession, principal: Principal, conversation_id: int, message_id: int,
    move: MoveIn,
) -> MoveOut:
    """Move a message (and with `with_following` every later one) into another of the
    contact's conversations, or split it off into a new one. Activity lines stay where
    they were: they record what happened to the conversation they are in."""
    if move.target_conversation_id is None:
        source = await get_conversation(session, principal, conversation_id, for_update=True)
        target = None
        _may_change(principal, source)
    else:
        source, target = await _lock_pair(session, principal, conversation_id,
                                          move.target_conversation_id)
        _same_customer(source, target)
        _may_change(principal, source, target)
    _not_merged(source)
    first = await _message_in(session, principal, source, message_id)
    movable = (Message.workspace_id == principal.workspace_id,
               Message.conversation_id == source.id,
               Message.message_type != MessageType.ACTIVITY.value)
    if move.with_following:
        ids = list((await session.execute(
            select(Message.id).where(*movable, Message.id >= first.id).order_by(Message.id)
        )).scalars())
    else:
        ids = [first.id]
    remaining = (await session.execute(
        select(func.count()).select_from(Message).where(*movable, Message.id.not_in(ids))
    )).scalar_one()
    if remaining == 0:
        raise Conflict("That would leave the conversation with no messages; merge it into the "
                       "other conversation instead", code="nothing_left")

    now = utcnow()
    created = target is None
    if target is None:
        target = Conversation(
            workspace_id=source.workspace_id, inbox_id=source.inbox_id,
            contact_id=source.contact_id, status=ConversationStatus.OPEN.value,
            priority=source.priority, assignee_id=source.assignee_id, team_id=source.team_id,
            subject=source.subject, custom_fields={}, last_activity_at=now,
        )
        session.add(target)
        await session.flush()
    await session.execute(
        update(Message).where(Message.id.in_(ids)).values(conversation_id=target.id)
        .execution_options(synchronize_session=False)
    )
    first_reply = (await session.execute(
        select(func.min(Message.created_at)).where(
            Message.id.in_(ids), Message.message_type == MessageType.OUTGOING.value)
    )).scalar_one_or_none()
    if first_reply is not None and (target.first_response_at is None
                                    or first_reply < target.first_response_at):
        target.first_response_at = first_reply
    source.last_activity_at = now
    target.last_activity_at = now
    await refresh_last_incoming(session, [source, target])
    await session.flush()
    if created:
        _add_activity_message(session, source, principal, f"Split into #{target.id}")
        _add_activity_message(session, target, principal, f"Split from #{source.id}")
    else:
        _add_activity_message(session, source, principal, f"Moved messages to #{target.id}")
        _add_activity_message(session, target, principal, f"Moved messages here from #{source.id}")
    source_out = await _emit(session, principal, source, EventType.CONVERSATION_UPDATED,
                             {"moved_message_ids": ids, "to_conversation_id": target.id})
    target_changes = {"moved_message_ids": ids, "from_conversation_id": source.id}
    if created:
        target_out = await to_out(session, target)
        record_event(session, principal.workspace_id, EventType.CONVERSATION_CREATED,
                     ConversationEvent(conversation=target_out, changes=target_changes,
                                       actor_user_id=principal.user_id))
    else:
        target_out = await _emit(session, principal, target, EventType.CONVERSATION_UPDATED,
                                 target_changes)
    return MoveOut(source=source_out, target=target_out, moved_message_ids=ids)
