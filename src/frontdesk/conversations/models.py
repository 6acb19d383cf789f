from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db.base import (
    Base,
    BigId,
    JsonDoc,
    created_at_column,
    id_column,
    utcnow,
    workspace_column,
)
from frontdesk.db.search import short_term_index, trigram_index


class ConversationStatus(enum.StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    CLOSED = "closed"


# A new customer message continues a conversation in one of these states.
CONTINUABLE_STATUSES = (
    ConversationStatus.OPEN.value,
    ConversationStatus.PENDING.value,
    ConversationStatus.SNOOZED.value,
)


class Priority(enum.StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class MessageType(enum.StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    NOTE = "note"  # private, never sent to the customer
    ACTIVITY = "activity"  # "Anna assigned this to Team Billing"


class SenderType(enum.StrEnum):
    CONTACT = "contact"
    USER = "user"
    BOT = "bot"
    SYSTEM = "system"


class DeliveryStatus(enum.StrEnum):
    RECEIVED = "received"
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


# Priorities in the order agents work them, as SQL. An expression rather than a stored
# column, so nothing that sets `priority` can let a rank drift from it; the index below and
# the inbox's queries use this very text, which is what lets PostgreSQL and SQLite match the
# query's ORDER BY to the index. Laid out as PostgreSQL prints it back, so Alembic's
# comparison of the models with the migrated schema sees the same text.
PRIORITY_RANK_SQL = ("\nCASE priority\n    WHEN 'urgent' THEN 4\n    WHEN 'high' THEN 3\n"
                     "    WHEN 'medium' THEN 2\n    WHEN 'low' THEN 1\n    ELSE 0\nEND")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_ws_activity", "workspace_id", "last_activity_at", "id"),
        # One per sort of the inbox (conversations.service.SORTS), within a status.
        Index("ix_conversations_ws_status_activity", "workspace_id", "status", "last_activity_at",
              "id"),
        Index("ix_conversations_ws_status_waiting", "workspace_id", "status", "waiting_since",
              "id"),
        Index("ix_conversations_ws_status_priority", "workspace_id", "status",
              text(f"({PRIORITY_RANK_SQL})"), "last_activity_at", "id"),
        Index("ix_conversations_contact_inbox", "contact_id", "inbox_id", "status"),
        # The workspace's latest change: the inbox's counts are recounted only after one.
        Index("ix_conversations_ws_updated", "workspace_id", "updated_at"),
        trigram_index("ix_conversations_subject_trgm", "subject"),
        short_term_index("ix_conversations_subject_short", "subject"),
    )

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column(indexed=False)
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=ConversationStatus.OPEN.value)
    priority: Mapped[str] = mapped_column(String(16), default=Priority.NONE.value)
    assignee_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    team_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    subject: Mapped[str | None] = mapped_column(String(998))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    snoozed_until: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Since when the customer has waited for an answer: set by a customer's message when not
    # already waiting, cleared by an agent's public reply (and by resolving or closing).
    waiting_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Set when this conversation was merged into another: it stays closed, pointing there.
    # No foreign key (see migration 0005): a survivor deleted later leaves a harmless 404.
    merged_into_id: Mapped[int | None] = mapped_column(BigId)
    # When its newest customer (incoming) message arrived: the `created_at` of that message.
    # Set by intake in the statement that touches the conversation anyway (no extra write
    # per message), recomputed when messages move (merge, split). Agents' read positions
    # (ConversationRead) are compared with it: newer means unread.
    last_incoming_at: Mapped[datetime | None]
    # Opened by automatic mail (an out-of-office that answers nothing of ours, a monitoring
    # alert, a newsletter): still work, but agents can tell and filter it. Cleared when a
    # person (the customer, not a machine) writes in it; automatic mail joining a
    # conversation never sets it.
    automatic: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at_column()


class ConversationTag(Base):
    __tablename__ = "conversation_tags"

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    workspace_id: Mapped[int] = workspace_column()


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # The idempotency key of intake: a channel's id for a message is stored once.
        UniqueConstraint("inbox_id", "external_id"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        trigram_index("ix_messages_content_trgm", "content"),
        short_term_index("ix_messages_content_short", "content"),
    )

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    message_type: Mapped[str] = mapped_column(String(16))
    sender_type: Mapped[str] = mapped_column(String(16))
    sender_contact_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="SET NULL")
    )
    sender_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )
    content: Mapped[str] = mapped_column(Text, default="")
    content_html: Mapped[str | None] = mapped_column(Text)  # sanitized before it is stored
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    external_id: Mapped[str | None] = mapped_column(String(512))
    delivery_status: Mapped[str] = mapped_column(String(16))
    delivery_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class ScheduledMessageStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


class ScheduledMessage(Base):
    """An agent's reply that goes out at `send_at` (conversations.scheduling sends it)."""

    __tablename__ = "scheduled_messages"
    __table_args__ = (
        # The sender only ever looks for due rows that still wait: keep that scan tiny.
        Index("ix_scheduled_messages_due", "send_at",
              postgresql_where=text("status = 'scheduled'"),
              sqlite_where=text("status = 'scheduled'")),
        Index("ix_scheduled_messages_conversation", "conversation_id", "send_at"),
    )

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    author_user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    content: Mapped[str] = mapped_column(Text)
    send_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16),
                                        default=ScheduledMessageStatus.SCHEDULED.value)
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="SET NULL")
    )
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConversationRead(Base):
    """How far one agent has read one conversation (conversations.reads keeps the rules).

    A row exists only once the agent has read (or marked) the conversation: no row per
    agent and conversation up front. The conversation is unread for the agent when it was
    marked unread, or when its newest customer message (`Conversation.last_incoming_at`)
    is newer than the newest customer message the agent had seen (`last_read_incoming_at`;
    no row: any customer message at all)."""

    __tablename__ = "conversation_reads"

    # (conversation, user) first: the inbox looks the calling agent's row up for each
    # listed conversation (a page's ids, or a join while walking a sort index), and a
    # deleted conversation's rows go with it through the same index.
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    workspace_id: Mapped[int] = workspace_column()
    # The newest message of the conversation the agent has seen (any kind). Only grows.
    last_read_message_id: Mapped[int | None] = mapped_column(BigId)
    # The `created_at` of the newest customer message among those seen. Only grows.
    last_read_incoming_at: Mapped[datetime | None]
    # The agent marked it unread again (as in a mail client): unread until read again.
    marked_unread: Mapped[bool] = mapped_column(Boolean, default=False,
                                                server_default=false())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
