"""conversation tools: canned responses, scheduled replies, merges

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from frontdesk.db.base import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WAITING = sa.text("status = 'scheduled'")
WORKSPACE_WIDE = sa.text("owner_user_id IS NULL")
PERSONAL = sa.text("owner_user_id IS NOT NULL")


def upgrade() -> None:
    # No foreign key: SQLite can only add one by rebuilding `conversations`, and dropping
    # the old table would cascade into every message. The pointer is informative; if the
    # survivor is ever deleted (with its inbox) it leads to a 404, nothing worse.
    op.add_column("conversations", sa.Column("merged_into_id", BIG_ID, nullable=True))

    op.create_table(
        "scheduled_messages",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("conversation_id", BIG_ID, nullable=False),
        sa.Column("author_user_id", BIG_ID, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("send_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_id", BIG_ID, nullable=True),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_user_id"], ["users.id"],
            name=op.f("fk_scheduled_messages_author_user_id_users"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"],
            name=op.f("fk_scheduled_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"],
            name=op.f("fk_scheduled_messages_message_id_messages"), ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"],
            name=op.f("fk_scheduled_messages_workspace_id_workspaces"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_messages")),
    )
    op.create_index("ix_scheduled_messages_due", "scheduled_messages", ["send_at"],
                    unique=False, postgresql_where=WAITING, sqlite_where=WAITING)
    op.create_index("ix_scheduled_messages_conversation", "scheduled_messages",
                    ["conversation_id", "send_at"], unique=False)
    op.create_index(op.f("ix_scheduled_messages_workspace_id"), "scheduled_messages",
                    ["workspace_id"], unique=False)

    op.create_table(
        "canned_responses",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("owner_user_id", BIG_ID, nullable=True),
        sa.Column("shortcut", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_by_id", BIG_ID, nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"],
            name=op.f("fk_canned_responses_created_by_id_users"), ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_user_id"], ["users.id"],
            name=op.f("fk_canned_responses_owner_user_id_users"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"],
            name=op.f("fk_canned_responses_workspace_id_workspaces"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_responses")),
    )
    op.create_index("uq_canned_responses_workspace_shortcut", "canned_responses",
                    ["workspace_id", "shortcut"], unique=True,
                    postgresql_where=WORKSPACE_WIDE, sqlite_where=WORKSPACE_WIDE)
    op.create_index("uq_canned_responses_owner_shortcut", "canned_responses",
                    ["workspace_id", "owner_user_id", "shortcut"], unique=True,
                    postgresql_where=PERSONAL, sqlite_where=PERSONAL)
    op.create_index(op.f("ix_canned_responses_workspace_id"), "canned_responses",
                    ["workspace_id"], unique=False)


def downgrade() -> None:
    op.drop_table("canned_responses")
    op.drop_table("scheduled_messages")
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.drop_column("merged_into_id")
