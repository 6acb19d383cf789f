"""search: indexes of one- and two-character substrings for short search terms (PostgreSQL)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 15:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every one- and two-character substring of lower(t) (duplicates left in: GIN keeps each key
# once per row). The pairs come from two passes of built-in C functions, the pairs starting
# at odd positions and those starting at even ones, because a loop over the characters in
# SQL or PL/pgSQL costs 20 times as much per message. U+0001 separates the pairs: a pair
# containing that character may be cut, so frontdesk.db.search never looks such a term up
# here. IMMUTABLE like lower() itself, which an expression index needs.
SHORT_GRAMS_FUNCTION = r"""
CREATE OR REPLACE FUNCTION frontdesk_short_grams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT string_to_array(
           rtrim(regexp_replace(lower(t), '(..)', E'\\1\x01', 'g'), E'\x01'), E'\x01')
      || string_to_array(
           rtrim(regexp_replace(substr(lower(t), 2), '(..)', E'\\1\x01', 'g'), E'\x01'), E'\x01')
      || string_to_array(lower(t), NULL)
$$
"""

# (index, table, column): what frontdesk.db.search.short_term_index declares in the models.
SHORT_TERM_INDEXES = (
    ("ix_messages_content_short", "messages", "content"),
    ("ix_conversations_subject_short", "conversations", "subject"),
    ("ix_contacts_name_short", "contacts", "name"),
    ("ix_contacts_email_short", "contacts", "email"),
    ("ix_contacts_phone_short", "contacts", "phone"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(sa.text(SHORT_GRAMS_FUNCTION))
    for name, table, column in SHORT_TERM_INDEXES:
        op.execute(sa.text(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON {table} USING gin '
            f"(frontdesk_short_grams({column})) WITH (fastupdate = on)"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _table, _column in SHORT_TERM_INDEXES:
        op.execute(sa.text(f'DROP INDEX IF EXISTS "{name}"'))
    op.execute(sa.text("DROP FUNCTION IF EXISTS frontdesk_short_grams(text)"))
