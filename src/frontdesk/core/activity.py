"""The activity log: who changed what, kept for audit and shown on the timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db.base import Base, BigId, created_at_column, id_column, workspace_column


class ActivityEntry(Base):
    __tablename__ = "activity_log"
    __table_args__ = (Index("ix_activity_subject", "workspace_id", "subject_type", "subject_id"),)

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    actor_type: Mapped[str] = mapped_column(String(16))  # user | system | api
    actor_id: Mapped[int | None] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(64))  # e.g. conversation.assigned
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int] = mapped_column(BigId)
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = created_at_column()


def record_activity(
    session: AsyncSession,
    *,
    workspace_id: int,
    actor_type: str,
    actor_id: int | None,
    action: str,
    subject_type: str,
    subject_id: int,
    changes: dict[str, Any],
) -> None:
    session.add(
        ActivityEntry(
            workspace_id=workspace_id,
            actor_type=actor_type,
            actor_id=actor_id,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            changes=changes,
        )
    )
