"""A browser's push subscription: where the push service takes messages for one agent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db.base import Base, BigId, created_at_column, id_column, workspace_column


class PushSubscription(Base):
    """One browser (or installed app) of one agent in one workspace. The endpoint is the
    push service's URL for that browser; p256dh and auth are the browser's keys that the
    message is encrypted to (RFC 8291), so only that browser can read it."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (UniqueConstraint("workspace_id", "endpoint"),)

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    endpoint: Mapped[str] = mapped_column(String(2048))
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = created_at_column()
    last_sent_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
