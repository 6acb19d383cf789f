from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db.base import Base, created_at_column, id_column, workspace_column


class ChannelType(enum.StrEnum):
    API = "api"
    EMAIL = "email"


class Inbox(Base):
    """One instance of a channel: an API endpoint, a support address, a chat widget..."""

    __tablename__ = "inboxes"

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = created_at_column()
    # Archived by an admin: takes no new messages (the API channel answers 409
    # `inbox_disabled`, SMTP 550, IMAP polling stops) while its conversations stay readable
    # and answerable, so the team can finish the work it has. None: it takes messages.
    disabled_at: Mapped[datetime | None]
