from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db.base import Base, BigId, JsonDoc, created_at_column, id_column, workspace_column


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt, or being attempted
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # gave up: every attempt failed, or the subscription went away


class WebhookSubscription(Base):
    """A workspace's wish to be told about some events at a URL."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    url: Mapped[str] = mapped_column(String(2048))
    # Event type names, or ["*"] for every event.
    events: Mapped[list[str]] = mapped_column(JsonDoc)
    # Shown once at creation; kept in clear because signing needs it. Never logged.
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    # Why it was switched off by Frontdesk itself (e.g. the receiver answered 410 Gone).
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class WebhookDelivery(Base):
    """One event for one subscription, with its attempts so far: the delivery log."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # Re-dispatching an event (the dispatcher is at-least-once) must not send it twice:
        # the listener inserts with ON CONFLICT DO NOTHING against this key.
        UniqueConstraint("subscription_id", "event_id"),
        # The sender only ever scans pending rows by due time; keep that scan tiny.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # The delivery log: one subscription's deliveries, newest first.
        Index("ix_webhook_deliveries_log", "subscription_id", "id"),
    )

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    subscription_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[int] = mapped_column(BigId)
    event_type: Mapped[str] = mapped_column(String(64))
    # The envelope as sent: {"id", "type", "created_at", "workspace_id", "data"}.
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Due time while pending (pushed ahead as a lease while an attempt is in flight).
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    # One entry per attempt: {"at", "status_code", "error", "duration_ms"}.
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    created_at: Mapped[datetime] = created_at_column()
