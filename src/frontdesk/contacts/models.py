from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db.base import Base, BigId, created_at_column, id_column, utcnow, workspace_column
from frontdesk.db.search import short_term_index, trigram_index


class IdentityKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"  # E.164
    EXTERNAL = "external"  # an id in another system, scoped by that system (see `scope`)


class Company(Base):
    __tablename__ = "companies"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str | None] = mapped_column(String(253))
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = created_at_column()


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_workspace_name", "workspace_id", "name"),
        trigram_index("ix_contacts_name_trgm", "name"),
        trigram_index("ix_contacts_email_trgm", "email"),
        trigram_index("ix_contacts_phone_trgm", "phone"),
        short_term_index("ix_contacts_name_short", "name"),
        short_term_index("ix_contacts_email_short", "email"),
        short_term_index("ix_contacts_phone_short", "phone"),
    )

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column(indexed=False)
    name: Mapped[str] = mapped_column(String(200), default="")
    # The preferred address and number; every known one is a ContactIdentity.
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    company_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("companies.id", ondelete="SET NULL")
    )
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ContactIdentity(Base):
    """One way to reach or recognise a contact. Unique per workspace: one owner each."""

    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("workspace_id", "kind", "scope", "value"),)

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column(indexed=False)
    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    # For external ids: the system that issued them ("api", "telegram", ...); else "".
    scope: Mapped[str] = mapped_column(String(64), default="")
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = created_at_column()


class ContactNote(Base):
    """What an agent wants the team to know about the customer, whatever the conversation.
    Plain text: templates escape it, nothing renders it as HTML."""

    __tablename__ = "contact_notes"
    __table_args__ = (Index("ix_contact_notes_contact", "contact_id", "id"),)

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    # A former member's notes stay: the knowledge is the team's, not the author's.
    author_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ContactTag(Base):
    """A tag on the contact itself ("vip", "churn-risk"), apart from conversation tags:
    a label of the person, kept when their conversations are closed and forgotten."""

    __tablename__ = "contact_tags"
    __table_args__ = (
        UniqueConstraint("contact_id", "name"),
        # The contact list's tag filter: the contacts of a workspace carrying one tag.
        Index("ix_contact_tags_workspace_name", "workspace_id", "name"),
    )

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at_column()
