from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db.base import Base, BigId, created_at_column, id_column, workspace_column


class Role(enum.StrEnum):
    """Ordered from least to most powerful; `at_least` compares by this order."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[int] = id_column()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = created_at_column()


class User(Base):
    """A person. One person can belong to several workspaces through memberships."""

    __tablename__ = "users"

    id: Mapped[int] = id_column()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(10), default="en")
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    # New assignments: a browser notification (push, when the page is closed too) and a
    # sound in the open page. Notifications are on (the browser still asks permission).
    notify_assignments: Mapped[bool] = mapped_column(Boolean, default=True,
                                                     server_default=true())
    notify_sound: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = created_at_column()


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id"),)

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20), default=Role.AGENT.value)
    created_at: Mapped[datetime] = created_at_column()


class Team(Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_column()


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[int] = workspace_column()


class ApiToken(Base):
    """Only a hash of the token is kept; the token itself is shown once, at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
