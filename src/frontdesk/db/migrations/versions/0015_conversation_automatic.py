"""automatic conversations: flag those opened by automatic mail

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NOT NULL with a constant default: a plain ALTER TABLE on both databases (PostgreSQL
    # 11+ writes no row for it).
    op.add_column("conversations", sa.Column("automatic", sa.Boolean(),
                                             server_default=sa.false(), nullable=False))
    # Existing conversations: opened by automatic mail, and no person has written since.
    op.execute(
        "UPDATE conversations SET automatic = TRUE WHERE EXISTS ("
        " SELECT 1 FROM email_messages e JOIN messages m ON m.id = e.message_id"
        " WHERE m.conversation_id = conversations.id AND e.automatic_kind IS NOT NULL"
        " AND m.id = (SELECT min(f.id) FROM messages f"
        "             WHERE f.conversation_id = conversations.id))"
        " AND NOT EXISTS ("
        " SELECT 1 FROM messages m LEFT JOIN email_messages e ON e.message_id = m.id"
        " WHERE m.conversation_id = conversations.id AND m.message_type = 'incoming'"
        " AND e.automatic_kind IS NULL)")


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+), not batch mode: see 0013.
    op.drop_column("conversations", "automatic")
