"""IMAP polling: the mailbox of an e-mail inbox, its encrypted password, state and lease

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 11:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from frontdesk.db.base import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "imap_mailboxes",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("inbox_id", BIG_ID, nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("tls", sa.String(length=16), nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("password_encrypted", sa.Text(), nullable=False),
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("after_import", sa.String(length=16), nullable=False),
        sa.Column("move_to", sa.String(length=200), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_polled_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("imported_count", sa.BigInteger(), nullable=False),
        sa.Column("refused_count", sa.BigInteger(), nullable=False),
        sa.Column("last_refused", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=120), nullable=True),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["inbox_id"], ["inboxes.id"],
                                name=op.f("fk_imap_mailboxes_inbox_id_inboxes"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_imap_mailboxes_workspace_id_workspaces"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imap_mailboxes")),
        sa.UniqueConstraint("inbox_id", name=op.f("uq_imap_mailboxes_inbox_id")),
    )
    op.create_index(op.f("ix_imap_mailboxes_workspace_id"), "imap_mailboxes",
                    ["workspace_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_imap_mailboxes_workspace_id"), table_name="imap_mailboxes")
    op.drop_table("imap_mailboxes")
