"""e-mail: which of the inbox's addresses an inbound mail was sent to

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 15:00:00

Replies come from the address the customer wrote to. Mail stored before has none
recorded: its conversations are answered from the inbox's primary address, as before.
An inbox's earlier addresses need no migration: each is a row of `email_addresses`
already, and is listed with the inbox's addresses.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column: added in place on both backends (no table rebuild on SQLite).
    op.add_column("email_messages",
                  sa.Column("support_address", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.drop_column("support_address")
