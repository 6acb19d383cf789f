from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db.base import (
    Base,
    BigId,
    created_at_column,
    id_column,
    utcnow,
    workspace_column,
)


class InboxView(Base):
    """Filters and a sort under a name. A personal view is seen by its owner alone; a shared
    one by everyone in the workspace (only supervisors and admins make or change those)."""

    __tablename__ = "inbox_views"
    __table_args__ = (Index("ix_inbox_views_ws_owner", "workspace_id", "owner_id"),)

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    owner_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    shared: Mapped[bool] = mapped_column(default=False)
    # inbox_views.schemas.ViewFilters in JSON mode.
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
