"""events: dead letters (failed_at) apart from delivered events

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from frontdesk.db.base import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING_BEFORE = "dispatched_at IS NULL"
_PENDING = "dispatched_at IS NULL AND failed_at IS NULL"
_FAILED = "failed_at IS NOT NULL"


def _pending_index(where: str) -> None:
    op.create_index("ix_events_pending", "events", ["id"],
                    postgresql_where=sa.text(where), sqlite_where=sa.text(where))


def upgrade() -> None:
    # Events the old dispatcher gave up on were marked dispatched like delivered ones and
    # cannot be told apart from those delivered after earlier failures: they stay as they are.
    op.add_column("events", sa.Column("failed_at", UTCDateTime(timezone=True), nullable=True))
    op.drop_index("ix_events_pending", table_name="events")
    _pending_index(_PENDING)
    op.create_index("ix_events_failed", "events", ["workspace_id", "id"],
                    postgresql_where=sa.text(_FAILED), sqlite_where=sa.text(_FAILED))


def downgrade() -> None:
    op.drop_index("ix_events_failed", table_name="events")
    op.drop_index("ix_events_pending", table_name="events")
    _pending_index(_PENDING_BEFORE)
    # Dead letters become what the old dispatcher made of them: given up, marked dispatched.
    op.execute("UPDATE events SET dispatched_at = failed_at WHERE failed_at IS NOT NULL")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("failed_at")
