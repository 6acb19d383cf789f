"""e-mail: who wrote the mails a customer forwarded (email_messages.forwarded)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from frontdesk.db.base import JsonDoc

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Mail stored before is left as it was: nothing forwarded recorded ('[]').
    with op.batch_alter_table("email_messages") as batch:
        batch.add_column(sa.Column("forwarded", JsonDoc, nullable=False,
                                   server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("email_messages") as batch:
        batch.drop_column("forwarded")
