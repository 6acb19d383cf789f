"""Domain events and the transactional outbox.

Every state change records an event row in the same transaction as the change. The
dispatcher (core.dispatcher) hands committed rows to listeners: real-time push, webhooks,
and whatever comes later (routing, SLA, automation). The names and payloads here are the
public contract of webhooks.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Index, Integer, String, Text, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.core.errors import Conflict
from frontdesk.core.pagination import decode_id_cursor, encode_cursor
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.db.base import Base, created_at_column, id_column, utcnow, workspace_column


class EventType(enum.StrEnum):
    """Every event Frontdesk emits, named noun.past_verb."""

    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_UPDATED = "conversation.updated"
    CONVERSATION_ASSIGNED = "conversation.assigned"
    CONVERSATION_STATUS_CHANGED = "conversation.status_changed"
    CONVERSATION_TAGS_CHANGED = "conversation.tags_changed"
    CONVERSATION_MERGED = "conversation.merged"
    MESSAGE_CREATED = "message.created"
    CONTACT_CREATED = "contact.created"
    CONTACT_UPDATED = "contact.updated"
    CONTACTS_MERGED = "contact.merged"
    CONTACT_NOTE_CREATED = "contact_note.created"
    CONTACT_NOTE_UPDATED = "contact_note.updated"
    CONTACT_NOTE_DELETED = "contact_note.deleted"
    COMPANY_CREATED = "company.created"
    # Workspace administration (see ADMIN_EVENT_TYPES).
    INBOX_CREATED = "inbox.created"
    INBOX_UPDATED = "inbox.updated"
    MEMBER_ADDED = "member.added"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    MEMBER_REACTIVATED = "member.reactivated"
    TEAM_CREATED = "team.created"
    TEAM_UPDATED = "team.updated"
    TEAM_MEMBER_ADDED = "team.member_added"
    TEAM_MEMBER_REMOVED = "team.member_removed"
    TEAM_DELETED = "team.deleted"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"
    API_TOKEN_CREATED = "api_token.created"  # noqa: S105 - an event name, not a secret
    API_TOKEN_REVOKED = "api_token.revoked"  # noqa: S105 - an event name, not a secret

    # Private to one user (see PRIVATE_EVENTS): their read state of a conversation changed.
    CONVERSATION_READ = "conversation.read"


# Changes to how the workspace is run rather than to the work in it. Webhooks can subscribe
# to them; the real-time stream (every agent's browser, API clients with an agent's token)
# does not carry them: agents have no use for them, and an admin's settings (webhook URLs,
# who holds which token) are not every agent's business.
ADMIN_EVENT_TYPES = frozenset({
    EventType.INBOX_CREATED, EventType.INBOX_UPDATED, EventType.MEMBER_ADDED,
    EventType.MEMBER_ROLE_CHANGED, EventType.MEMBER_REMOVED, EventType.MEMBER_REACTIVATED,
    EventType.TEAM_CREATED, EventType.TEAM_UPDATED, EventType.TEAM_MEMBER_ADDED,
    EventType.TEAM_MEMBER_REMOVED, EventType.TEAM_DELETED,
    EventType.WEBHOOK_CREATED, EventType.WEBHOOK_UPDATED, EventType.WEBHOOK_DELETED,
    EventType.API_TOKEN_CREATED, EventType.API_TOKEN_REVOKED,
})

# Events about one user alone: the payload's `user_id` names them. They go through the
# outbox like the rest (recorded with the change, so a rolled-back change never announces
# itself, and delivered across processes in order with the events around them), but the
# real-time hub offers them only to that user's own connections, and webhooks never carry
# them: they are not part of the webhook contract.
PRIVATE_EVENTS = frozenset({EventType.CONVERSATION_READ.value})
# What webhooks can subscribe to and carry.
PUBLIC_EVENTS = tuple(e for e in EventType if e.value not in PRIVATE_EVENTS)


def private_to(event_type: str, data: Any) -> int | None:
    """The one user a private event is for, or None for a workspace-wide event. A private
    event without a user is meant for nobody (-1: never a user id)."""
    if event_type not in PRIVATE_EVENTS:
        return None
    user_id = data.get("user_id") if isinstance(data, dict) else None
    return user_id if type(user_id) is int else -1


class OutboxEvent(Base):
    __tablename__ = "events"
    __table_args__ = (
        # The dispatcher only ever scans undelivered, live rows; keep that scan tiny.
        Index(
            "ix_events_pending",
            "id",
            postgresql_where=text("dispatched_at IS NULL AND failed_at IS NULL"),
            sqlite_where=text("dispatched_at IS NULL AND failed_at IS NULL"),
        ),
        # The admins' list of dead-lettered events, per workspace, newest first.
        Index(
            "ix_events_failed",
            "workspace_id",
            "id",
            postgresql_where=text("failed_at IS NOT NULL"),
            sqlite_where=text("failed_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = created_at_column()
    # A failed delivery is retried no earlier than this (exponential backoff).
    available_at: Mapped[datetime] = created_at_column()
    dispatched_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Dead letter: the listeners failed on it `MAX_ATTEMPTS` times. Never claimed again
    # (nor marked dispatched: it was not) until an admin retries it.
    failed_at: Mapped[datetime | None]


def _event_values(workspace_id: int, type_: EventType, payload: BaseModel) -> dict[str, Any]:
    now = utcnow()
    return {
        "workspace_id": workspace_id,
        "type": type_.value,
        "payload": payload.model_dump(mode="json"),
        "created_at": now,
        "available_at": now,
        "attempts": 0,
    }


def record_event(
    session: AsyncSession, workspace_id: int, type_: EventType, payload: BaseModel
) -> None:
    """Add the event to the session's transaction; it is dispatched once that commits."""
    session.add(OutboxEvent(**_event_values(workspace_id, type_, payload)))
    session.info["events_recorded"] = True


async def record_events(
    session: AsyncSession, workspace_id: int, type_: EventType, payloads: Sequence[BaseModel]
) -> None:
    """Many events of one change (an admin's change reaching every row that carries a tag)
    in the session's transaction, as one multi-row insert rather than an object each: the
    same rows as `record_event`, dispatched alike once the transaction commits."""
    if not payloads:
        return
    await session.execute(insert(OutboxEvent),
                          [_event_values(workspace_id, type_, p) for p in payloads])
    session.info["events_recorded"] = True


def record_event_sync(
    conn: Connection, workspace_id: int, type_: EventType, payload: BaseModel
) -> None:
    """The same, for code running on a plain connection (the group-commit writers)."""
    conn.execute(insert(OutboxEvent), [_event_values(workspace_id, type_, payload)])


# ------------------------------------------------------------------- dead letters (admins)


async def list_failed_events(
    session: AsyncSession, workspace_id: int, *, cursor: str | None, limit: int,
) -> tuple[list[OutboxEvent], str | None]:
    """The workspace's dead-lettered events, newest first."""
    stmt = (
        select(OutboxEvent)
        .where(OutboxEvent.workspace_id == workspace_id, OutboxEvent.failed_at.is_not(None))
        .order_by(OutboxEvent.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        stmt = stmt.where(OutboxEvent.id < decode_id_cursor(cursor))
    rows = list((await session.execute(stmt)).scalars())
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def retry_failed_event(session: AsyncSession, workspace_id: int,
                             event_id: int) -> OutboxEvent:
    """Put a dead-lettered event back in the outbox with a fresh count of attempts; it is
    dispatched once this transaction commits. Its last error stays until it is delivered
    or fails again."""
    event = await get_in_workspace(session, OutboxEvent, workspace_id, event_id, what="Event",
                                   for_update=True)
    if event.failed_at is None:
        raise Conflict(f"Event {event_id} is not a failed event",
                       code="event_not_failed")
    event.failed_at = None
    event.attempts = 0
    event.available_at = utcnow()
    session.info["events_recorded"] = True  # wake the dispatcher after the commit
    return event
