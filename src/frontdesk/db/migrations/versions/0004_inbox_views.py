"""agent inbox: saved views and sort keys

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from frontdesk.db.base import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
# The same text as conversations.models.PRIORITY_RANK_SQL (a migration keeps its own copy).
PRIORITY_RANK = sa.text("(\nCASE priority\n    WHEN 'urgent' THEN 4\n    WHEN 'high' THEN 3\n"
                        "    WHEN 'medium' THEN 2\n    WHEN 'low' THEN 1\n    ELSE 0\nEND)")


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("waiting_since", UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_index("ix_conversations_ws_status_activity")
        batch_op.create_index("ix_conversations_ws_status_activity",
                              ["workspace_id", "status", "last_activity_at", "id"], unique=False)
        batch_op.create_index("ix_conversations_ws_status_waiting",
                              ["workspace_id", "status", "waiting_since", "id"], unique=False)
        batch_op.create_index("ix_conversations_ws_status_priority",
                              ["workspace_id", "status", PRIORITY_RANK, "last_activity_at", "id"],
                              unique=False)
        batch_op.create_index("ix_conversations_ws_updated", ["workspace_id", "updated_at"],
                              unique=False)
    # A customer whose latest message came after the last public reply is waiting (since
    # that message, to the nearest: the conversation's first unanswered one is not kept).
    op.execute(
        "UPDATE conversations SET waiting_since = ("
        " SELECT min(m.created_at) FROM messages m WHERE m.conversation_id = conversations.id"
        " AND m.message_type = 'incoming' AND m.id > coalesce(("
        "  SELECT max(r.id) FROM messages r WHERE r.conversation_id = conversations.id"
        "  AND r.message_type = 'outgoing'), 0))"
        " WHERE status IN ('open', 'pending', 'snoozed')"
    )

    op.create_table(
        "inbox_views",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("owner_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("filters", JSON_DOC, nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"],
                                name=op.f("fk_inbox_views_owner_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_inbox_views_workspace_id_workspaces"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_views")),
    )
    with op.batch_alter_table("inbox_views", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_views_ws_owner", ["workspace_id", "owner_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_inbox_views_workspace_id"), ["workspace_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbox_views", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_views_workspace_id"))
        batch_op.drop_index("ix_inbox_views_ws_owner")
    op.drop_table("inbox_views")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_ws_updated")
        batch_op.drop_index("ix_conversations_ws_status_priority")
        batch_op.drop_index("ix_conversations_ws_status_waiting")
        batch_op.drop_index("ix_conversations_ws_status_activity")
        batch_op.create_index("ix_conversations_ws_status_activity",
                              ["workspace_id", "status", "last_activity_at"], unique=False)
        batch_op.drop_column("waiting_since")
