"""inboxes: disabled_at, an admin's archiving of an inbox (no new messages)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 15:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from frontdesk.db.base import UTCDateTime

revision: str = "0014"
# Another branch adds 0014; the merge re-chains this one after it.
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a foreign key: a plain ALTER TABLE on both databases.
    op.add_column("inboxes", sa.Column("disabled_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("inboxes", "disabled_at")
