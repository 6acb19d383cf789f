"""e-mail channel: support addresses, mail records, participants, outbound queue, quarantine,
automatic acknowledgements

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from frontdesk.db.base import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _workspace_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                   name=op.f(f"fk_{table}_workspace_id_workspaces"),
                                   ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "email_addresses",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("inbox_id", BIG_ID, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["inbox_id"], ["inboxes.id"],
                                name=op.f("fk_email_addresses_inbox_id_inboxes"),
                                ondelete="CASCADE"),
        _workspace_fk("email_addresses"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_addresses")),
        sa.UniqueConstraint("address", name=op.f("uq_email_addresses_address")),
    )
    op.create_index(op.f("ix_email_addresses_inbox_id"), "email_addresses", ["inbox_id"])
    op.create_index(op.f("ix_email_addresses_workspace_id"), "email_addresses",
                    ["workspace_id"])

    op.create_table(
        "email_participants",
        sa.Column("conversation_id", BIG_ID, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name=op.f("fk_email_participants_conversation_id_conversations"),
                                ondelete="CASCADE"),
        _workspace_fk("email_participants"),
        sa.PrimaryKeyConstraint("conversation_id", "address", name=op.f("pk_email_participants")),
    )
    op.create_index(op.f("ix_email_participants_workspace_id"), "email_participants",
                    ["workspace_id"])

    op.create_table(
        "email_messages",
        sa.Column("message_id", BIG_ID, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("inbox_id", BIG_ID, nullable=False),
        sa.Column("conversation_id", BIG_ID, nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("header_message_id", sa.String(length=998), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("from_address", sa.String(length=320), nullable=False),
        sa.Column("from_name", sa.String(length=320), nullable=False),
        sa.Column("to_addresses", JSON_DOC, nullable=False),
        sa.Column("cc_addresses", JSON_DOC, nullable=False),
        sa.Column("in_reply_to", sa.String(length=998), nullable=True),
        sa.Column("reference_ids", JSON_DOC, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("quoted_text", sa.Text(), nullable=False),
        sa.Column("automatic_kind", sa.String(length=32), nullable=True),
        sa.Column("automatic_reason", sa.Text(), nullable=True),
        sa.Column("is_bounce", sa.Boolean(), nullable=False),
        sa.Column("thread_note", sa.String(length=64), nullable=True),
        sa.Column("defects", JSON_DOC, nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name=op.f("fk_email_messages_conversation_id_conversations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["inbox_id"], ["inboxes.id"],
                                name=op.f("fk_email_messages_inbox_id_inboxes"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"],
                                name=op.f("fk_email_messages_message_id_messages"),
                                ondelete="CASCADE"),
        _workspace_fk("email_messages"),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_email_messages")),
    )
    op.create_index("ix_email_messages_conversation", "email_messages",
                    ["conversation_id", "message_id"])
    op.create_index("ix_email_messages_sender", "email_messages",
                    ["inbox_id", "from_address", "created_at"])
    op.create_index(op.f("ix_email_messages_workspace_id"), "email_messages", ["workspace_id"])

    op.create_table(
        "email_outbound",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("message_id", BIG_ID, nullable=False),
        sa.Column("header_message_id", sa.String(length=998), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"],
                                name=op.f("fk_email_outbound_message_id_messages"),
                                ondelete="CASCADE"),
        _workspace_fk("email_outbound"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_outbound")),
        sa.UniqueConstraint("message_id", name=op.f("uq_email_outbound_message_id")),
    )
    op.create_index("ix_email_outbound_due", "email_outbound", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_email_outbound_workspace_id"), "email_outbound", ["workspace_id"])

    op.create_table(
        "email_quarantine",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("inbox_id", BIG_ID, nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("envelope_sender", sa.String(length=998), nullable=True),
        sa.Column("envelope_recipients", JSON_DOC, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("reprocessed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("message_id", BIG_ID, nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["inbox_id"], ["inboxes.id"],
                                name=op.f("fk_email_quarantine_inbox_id_inboxes"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"],
                                name=op.f("fk_email_quarantine_message_id_messages"),
                                ondelete="SET NULL"),
        _workspace_fk("email_quarantine"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_quarantine")),
    )
    op.create_index(op.f("ix_email_quarantine_workspace_id"), "email_quarantine",
                    ["workspace_id"])

    op.create_table(
        "email_auto_acknowledgements",
        sa.Column("inbox_id", BIG_ID, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["inbox_id"], ["inboxes.id"],
                                name=op.f("fk_email_auto_acknowledgements_inbox_id_inboxes"),
                                ondelete="CASCADE"),
        _workspace_fk("email_auto_acknowledgements"),
        sa.PrimaryKeyConstraint("inbox_id", "address",
                                name=op.f("pk_email_auto_acknowledgements")),
    )
    op.create_index(op.f("ix_email_auto_acknowledgements_workspace_id"),
                    "email_auto_acknowledgements", ["workspace_id"])


def downgrade() -> None:
    for table in ("email_auto_acknowledgements", "email_quarantine", "email_outbound", "email_messages", "email_participants",
                  "email_addresses"):
        op.drop_table(table)
