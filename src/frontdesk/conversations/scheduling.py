"""Scheduled replies: an agent's reply stored now and sent at `send_at`.

Until it is sent it can be edited or cancelled (by its author, or a supervisor). When it is
due, `ScheduledReplySender` (running wherever events are dispatched: `frontdesk serve`
with the embedded worker, and every `frontdesk worker`) sends it through
`conversations.service.reply_to_conversation`, exactly as if its author had pressed Send
then: the same message row, `message.created` event, webhooks and channel delivery.

Exactly once: the sender claims due rows with FOR UPDATE SKIP LOCKED (on SQLite the
claim is the transaction's first write, which takes the database's write lock) and, in
the same transaction, stores the message and marks the row sent. A process killed in
between rolls both back, and the row is claimed again; two processes never both get it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal, get_member
from frontdesk.conversations.models import ScheduledMessage, ScheduledMessageStatus
from frontdesk.conversations.schemas import ReplyIn, ScheduledMessageIn, ScheduledMessageUpdate
from frontdesk.conversations.service import get_conversation, reply_to_conversation
from frontdesk.core.activity import record_activity
from frontdesk.core.background import PumpLoop
from frontdesk.core.errors import Conflict, Forbidden, FrontdeskError, InvalidInput, NotFound
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.db.base import utcnow

log = logging.getLogger(__name__)

WAITING = ScheduledMessageStatus.SCHEDULED.value


def _in_the_future(send_at: datetime) -> None:
    if send_at <= utcnow():
        raise InvalidInput("send_at must be in the future", code="send_at_in_past",
                           details=[{"field": "body.send_at", "message": "must be in the future"}])


def _audit(session: AsyncSession, principal: Principal, action: str, row: ScheduledMessage,
           changes: dict[str, object]) -> None:
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action=f"scheduled_message.{action}",
                    subject_type="conversation", subject_id=row.conversation_id,
                    changes={"scheduled_message_id": row.id, **changes})


async def list_scheduled_messages(
    session: AsyncSession, principal: Principal, conversation_id: int,
    *, waiting_only: bool = False,
) -> list[ScheduledMessage]:
    conversation = await get_conversation(session, principal, conversation_id)
    stmt = select(ScheduledMessage).where(
        ScheduledMessage.workspace_id == principal.workspace_id,
        ScheduledMessage.conversation_id == conversation.id,
    )
    if waiting_only:
        stmt = stmt.where(ScheduledMessage.status == WAITING)
    rows = await session.execute(stmt.order_by(ScheduledMessage.send_at, ScheduledMessage.id))
    return list(rows.scalars())


async def schedule_reply(
    session: AsyncSession, principal: Principal, conversation_id: int, data: ScheduledMessageIn
) -> ScheduledMessage:
    conversation = await get_conversation(session, principal, conversation_id)
    if conversation.merged_into_id is not None:
        raise Conflict(f"Conversation {conversation.id} was merged into "
                       f"{conversation.merged_into_id}; reply there", code="already_merged",
                       details={"conversation_id": conversation.id,
                                "merged_into_id": conversation.merged_into_id})
    _in_the_future(data.send_at)
    row = ScheduledMessage(
        workspace_id=principal.workspace_id, conversation_id=conversation.id,
        author_user_id=principal.user_id, content=data.content, send_at=data.send_at,
        status=WAITING,
    )
    session.add(row)
    await session.flush()
    _audit(session, principal, "created", row, {"send_at": data.send_at.isoformat()})
    return row


async def _waiting_row(
    session: AsyncSession, principal: Principal, conversation_id: int, scheduled_id: int
) -> ScheduledMessage:
    """The row, locked, if it still waits and `principal` may change it. The lock makes a
    change and the sender's claim take turns: whichever comes second sees the other's."""
    conversation = await get_conversation(session, principal, conversation_id)
    row = await get_in_workspace(session, ScheduledMessage, principal.workspace_id,
                                 scheduled_id, what="Scheduled message", for_update=True)
    if row.conversation_id != conversation.id:
        raise NotFound(f"Scheduled message {scheduled_id} was not found")
    if row.author_user_id != principal.user_id and not principal.role.at_least(Role.SUPERVISOR):
        raise Forbidden("Only its author or a supervisor can change a scheduled message",
                        code="not_author")
    if row.status != WAITING:
        raise Conflict(f"This scheduled message is {row.status} and can no longer change",
                       code=f"scheduled_message_{row.status}")
    return row


async def update_scheduled_message(
    session: AsyncSession, principal: Principal, conversation_id: int, scheduled_id: int,
    patch: ScheduledMessageUpdate,
) -> ScheduledMessage:
    row = await _waiting_row(session, principal, conversation_id, scheduled_id)
    changes: dict[str, object] = {}
    if patch.send_at is not None and patch.send_at != row.send_at:
        _in_the_future(patch.send_at)
        changes["send_at"] = [row.send_at.isoformat(), patch.send_at.isoformat()]
        row.send_at = patch.send_at
    if patch.content is not None and patch.content != row.content:
        changes["content"] = True
        row.content = patch.content
    if changes:
        await session.flush()
        _audit(session, principal, "updated", row, changes)
    return row


async def cancel_scheduled_message(
    session: AsyncSession, principal: Principal, conversation_id: int, scheduled_id: int
) -> ScheduledMessage:
    row = await _waiting_row(session, principal, conversation_id, scheduled_id)
    row.status = ScheduledMessageStatus.CANCELLED.value
    await session.flush()
    _audit(session, principal, "cancelled", row, {})
    return row


# --- sending ------------------------------------------------------------------------------


async def _claim_due(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    # A MATERIALIZED CTE, not `IN (subquery)`: a LIMIT ... SKIP LOCKED subquery the planner
    # ran twice could lock one set of rows and return another (see core.dispatcher).
    due = (
        select(ScheduledMessage.id)
        .where(ScheduledMessage.status == WAITING, ScheduledMessage.send_at <= now)
        .order_by(ScheduledMessage.send_at, ScheduledMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    # The claim writes first: on SQLite that takes the write lock before anything is read.
    claimed = await session.execute(
        update(ScheduledMessage)
        .where(ScheduledMessage.id.in_(select(due.c.id)), ScheduledMessage.status == WAITING)
        .values(updated_at=now)
        .returning(ScheduledMessage.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(claimed.scalars())


async def _send_one(session: AsyncSession, row: ScheduledMessage, now: datetime) -> None:
    # Read before the savepoint: a failure inside it must not leave us reading the row.
    row_id, workspace_id, author_id = row.id, row.workspace_id, row.author_user_id
    conversation_id, content = row.conversation_id, row.content
    try:
        async with session.begin_nested():
            _, role = await get_member(session, workspace_id, author_id)
            author = Principal(user_id=author_id, workspace_id=workspace_id, role=role)
            # Not marked read for the author: they wrote it earlier and may not have seen
            # what the customer wrote since.
            message = await reply_to_conversation(session, author, conversation_id,
                                                  ReplyIn(content=content), marks_read=False)
    except FrontdeskError as exc:
        # The service refused: the author left the workspace (a membership is all a reply
        # is sent under), the conversation is gone... Final: it is marked, not retried.
        row.status, row.error = ScheduledMessageStatus.FAILED.value, exc.message[:2000]
        return
    except DBAPIError:
        raise  # the database's trouble (a deadlock, a lost connection): the batch is retried
    except Exception as exc:
        # A bug must not hold the other replies back, nor be retried forever.
        log.exception("scheduled message %s could not be sent", row_id)
        row.status = ScheduledMessageStatus.FAILED.value
        row.error = f"{type(exc).__name__}: {exc}"[:2000]
        return
    row.status = ScheduledMessageStatus.SENT.value
    row.message_id = message.id
    row.sent_at = now


async def send_due_replies(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None,
    limit: int = 50,
) -> list[int]:
    """Claim and send what is due at `now` in one transaction. Returns the ids handled
    (sent, or marked failed with the reason)."""
    now = now or utcnow()
    async with sessions() as session:
        async with session.begin():
            ids = await _claim_due(session, now, limit)
            if not ids:
                return []
            # By conversation: each reply locks its conversation until the commit, and
            # taking those locks in one order (as merges do) lets no two senders deadlock.
            rows = (await session.execute(
                select(ScheduledMessage).where(ScheduledMessage.id.in_(ids))
                .order_by(ScheduledMessage.conversation_id, ScheduledMessage.send_at,
                          ScheduledMessage.id)
            )).scalars().all()
            for row in rows:
                await _send_one(session, row, now)
        return ids


class ScheduledReplySender(PumpLoop):
    """The background job: sleeps until the next reply is due (at most `poll_interval`,
    so a reply scheduled in another process is seen soon), then sends what is due."""

    what = "sending scheduled replies"

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession],
        read_sessions: async_sessionmaker[AsyncSession],
        *, on_sent: Callable[[], None], poll_interval: float = 5.0, batch_size: int = 50,
    ) -> None:
        super().__init__(poll_interval)
        self._sessions = sessions
        self._read_sessions = read_sessions
        self._on_sent = on_sent
        self.batch_size = batch_size

    async def run_forever(self) -> None:
        await self._run_rounds()

    async def _pump(self) -> float:
        due_in = await self._seconds_until_due()
        if due_in is None:
            return self.poll_interval
        if due_in > 0:
            return min(due_in, self.poll_interval)
        handled = await send_due_replies(self._sessions, limit=self.batch_size)
        if handled:
            self._on_sent()  # the messages' events: dispatch them now, not at the next poll
        if len(handled) == self.batch_size:
            return 0  # there may be more due
        # Nothing claimed although something was due: another process holds it. Don't spin.
        return min(1.0, self.poll_interval)

    async def _seconds_until_due(self) -> float | None:
        # A read, not a claim: on SQLite a claim takes the write lock, which the sender
        # must not take every few seconds for nothing.
        async with self._read_sessions() as session:
            due = (await session.execute(
                select(func.min(ScheduledMessage.send_at))
                .where(ScheduledMessage.status == WAITING)
            )).scalar_one_or_none()
        if due is None:
            return None
        return max(0.0, (due - utcnow()).total_seconds())
