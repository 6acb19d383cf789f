"""The e-mail channel's tables: support addresses, mail records, participants, the outbound
queue and the quarantine."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy import text as sql_text  # (`text` is a column of EmailRecord)
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db.base import (
    Base,
    BigId,
    JsonDoc,
    created_at_column,
    id_column,
    workspace_column,
)


class SupportAddress(Base):
    """An address an inbox receives mail for. Unique across all workspaces: mail for an
    address belongs to exactly one inbox."""

    __tablename__ = "email_addresses"

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    inbox_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("inboxes.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(String(320), unique=True)  # lower-cased
    created_at: Mapped[datetime] = created_at_column()


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class EmailRecord(Base):
    """The e-mail side of a stored message: its headers, the full original text, what was
    cut as quoted history, and how it was classified. One per message of an e-mail inbox;
    the message's `external_id` is the Message-ID (the idempotency key of intake)."""

    __tablename__ = "email_messages"
    __table_args__ = (
        # The per-sender rate limit counts a sender's recent mail in an inbox.
        Index("ix_email_messages_sender", "inbox_id", "from_address", "created_at"),
        Index("ix_email_messages_conversation", "conversation_id", "message_id"),
    )

    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[int] = workspace_column()
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    direction: Mapped[str] = mapped_column(String(16))
    header_message_id: Mapped[str] = mapped_column(String(998))  # without angle brackets
    subject: Mapped[str] = mapped_column(String(998), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(320), default="")
    # Inbound: which of the inbox's addresses the mail was sent to (the envelope's
    # recipient, else Delivered-To/To/Cc); replies in its conversation come from it.
    # None: unknown (mail stored before it was recorded) and for our own mail.
    support_address: Mapped[str | None] = mapped_column(String(320))
    # "Name <address>" as written
    to_addresses: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    cc_addresses: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    reference_ids: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    text: Mapped[str] = mapped_column(Text, default="")  # the whole text, history included
    quoted_text: Mapped[str] = mapped_column(Text, default="")  # history and signature
    automatic_kind: Mapped[str | None] = mapped_column(String(32))
    automatic_reason: Mapped[str | None] = mapped_column(Text)
    is_bounce: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why the mail did not join the conversation it referred to (e.g. "not_a_participant").
    thread_note: Mapped[str | None] = mapped_column(String(64))
    defects: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    # The mails forwarded in this one (parsing.ForwardedMail.as_json): who originally wrote.
    forwarded: Mapped[list[dict[str, Any]]] = mapped_column(
        JsonDoc, default=list, server_default=sql_text("'[]'"))
    raw_sha256: Mapped[str | None] = mapped_column(String(64))  # <data_dir>/mail/<sha>.eml
    source: Mapped[str] = mapped_column(String(32), default="smtp")
    created_at: Mapped[datetime] = created_at_column()


class EmailParticipant(Base):
    """An address taking part in an e-mail conversation (From, To, Cc of its mails, less
    our own addresses). A reply is threaded into a conversation only for a participant;
    an agent's reply goes to the contact and, as reply-all, to the other participants."""

    __tablename__ = "email_participants"

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(String(320), primary_key=True)  # lower-cased
    workspace_id: Mapped[int] = workspace_column()
    name: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = created_at_column()


class OutboundStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboundEmail(Base):
    """An agent's reply waiting to go out (or gone) through the SMTP relay. One per
    message: the listener's insert does nothing on conflict, so an event dispatched twice
    still sends once (per successful attempt)."""

    __tablename__ = "email_outbound"
    __table_args__ = (Index("ix_email_outbound_due", "status", "next_attempt_at"),)

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    header_message_id: Mapped[str] = mapped_column(String(998))
    status: Mapped[str] = mapped_column(String(16), default=OutboundStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_at_column()


class QuarantineReason(enum.StrEnum):
    UNPARSEABLE = "unparseable"
    NO_SENDER = "no_sender"
    RATE_LIMITED = "rate_limited"


class QuarantinedEmail(Base):
    """A mail that was received but could not be stored as a message: kept whole, listed
    for admins with the reason, and re-processed on request (after a fix)."""

    __tablename__ = "email_quarantine"
    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    reason_code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    envelope_sender: Mapped[str | None] = mapped_column(String(998))
    envelope_recipients: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    source: Mapped[str] = mapped_column(String(32))
    # Set once re-processing stored it (then the row stays as a record of what happened).
    reprocessed_at: Mapped[datetime | None]
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_at_column()


class AutoAcknowledgement(Base):
    """When an address last got an automatic answer from an inbox: RFC 3834 allows one per
    sender per period (FRONTDESK_EMAIL_AUTO_REPLY_INTERVAL_HOURS), so two auto-responders
    can never answer each other for ever."""

    __tablename__ = "email_auto_acknowledgements"

    inbox_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(String(320), primary_key=True)  # lower-cased
    workspace_id: Mapped[int] = workspace_column()
    sent_at: Mapped[datetime]
