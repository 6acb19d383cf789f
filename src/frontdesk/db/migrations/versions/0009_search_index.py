"""search: trigram indexes for the inbox's text search (PostgreSQL only)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 12:40:00
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (index, table, column): what frontdesk.db.search.trigram_index declares in the models.
TRIGRAM_INDEXES = (
    ("ix_messages_content_trgm", "messages", "content"),
    ("ix_conversations_subject_trgm", "conversations", "subject"),
    ("ix_contacts_name_trgm", "contacts", "name"),
    ("ix_contacts_email_trgm", "contacts", "email"),
    ("ix_contacts_phone_trgm", "contacts", "phone"),
)


def _pg_trgm_ready(bind: sa.Connection) -> bool:
    # CREATE EXTENSION needs rights the application's role may not have; search is still
    # correct without the indexes (a scan), so a refusal must not stop the upgrade. The
    # savepoint keeps the failed statement from aborting the migration's transaction.
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        # A warning, not a log record: `frontdesk migrate` configures no logging, and the
        # operator should see why search is slower than it could be.
        reason = " ".join(str(exc.orig).split())
        warnings.warn(f"pg_trgm is not available ({reason}): no trigram indexes, the inbox's "
                      "text search stays a scan (correct, slower at scale)", stacklevel=1)
        return False
    savepoint.commit()
    return True


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _pg_trgm_ready(bind):
        return
    for name, table, column in TRIGRAM_INDEXES:
        op.create_index(name, table, [column], postgresql_using="gin",
                        postgresql_ops={column: "gin_trgm_ops"},
                        postgresql_with={"fastupdate": "on"})


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _table, _column in TRIGRAM_INDEXES:
        op.execute(sa.text(f'DROP INDEX IF EXISTS "{name}"'))
