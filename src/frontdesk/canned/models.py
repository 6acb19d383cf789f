from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db.base import Base, BigId, created_at_column, id_column, utcnow, workspace_column


class CannedResponse(Base):
    """A saved reply: workspace-wide (owner_user_id is NULL) or one agent's own."""

    __tablename__ = "canned_responses"
    __table_args__ = (
        # A shortcut names one workspace-wide response, and one personal response per agent
        # (which may shadow the workspace's). Two partial indexes, because a unique key over
        # a NULL owner would let any number of workspace-wide duplicates in.
        Index("uq_canned_responses_workspace_shortcut", "workspace_id", "shortcut",
              unique=True, postgresql_where=text("owner_user_id IS NULL"),
              sqlite_where=text("owner_user_id IS NULL")),
        Index("uq_canned_responses_owner_shortcut", "workspace_id", "owner_user_id", "shortcut",
              unique=True, postgresql_where=text("owner_user_id IS NOT NULL"),
              sqlite_where=text("owner_user_id IS NOT NULL")),
    )

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    owner_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE")
    )
    shortcut: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
