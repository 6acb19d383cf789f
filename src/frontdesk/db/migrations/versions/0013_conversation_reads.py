"""reads: each agent's read position in a conversation, and when its last customer message came

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 14:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from frontdesk.db.base import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A nullable column without a foreign key: a plain ALTER TABLE on both databases.
    op.add_column("conversations",
                  sa.Column("last_incoming_at", UTCDateTime(timezone=True), nullable=True))
    # Existing conversations: when their newest customer message arrived.
    op.execute(
        "UPDATE conversations SET last_incoming_at = (SELECT max(m.created_at) FROM messages m "
        "WHERE m.conversation_id = conversations.id AND m.message_type = 'incoming')")
    op.create_table(
        "conversation_reads",
        sa.Column("conversation_id", BIG_ID, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("last_read_message_id", BIG_ID, nullable=True),
        sa.Column("last_read_incoming_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("marked_unread", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name=op.f("fk_conversation_reads_conversation_id_conversations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_conversation_reads_user_id_users"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_conversation_reads_workspace_id_workspaces"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conversation_id", "user_id",
                                name=op.f("pk_conversation_reads")),
    )
    op.create_index(op.f("ix_conversation_reads_user_id"), "conversation_reads", ["user_id"])
    op.create_index(op.f("ix_conversation_reads_workspace_id"), "conversation_reads",
                    ["workspace_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_conversation_reads_workspace_id"), table_name="conversation_reads")
    op.drop_index(op.f("ix_conversation_reads_user_id"), table_name="conversation_reads")
    op.drop_table("conversation_reads")
    # A plain DROP COLUMN (SQLite 3.35+), not batch mode: rebuilding `conversations` on
    # SQLite would lose the expression index of the priority sort, which it cannot reflect.
    op.drop_column("conversations", "last_incoming_at")
