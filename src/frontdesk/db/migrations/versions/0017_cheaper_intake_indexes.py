"""search and intake: the short-term indexes hold pairs as a tsvector; redundant workspace
indexes go

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 18:40:00

Intake writes every message, so every index on `messages` and `conversations` is paid for
on the hottest path. Two changes, measured on PostgreSQL (docs/performance.md):

* The short-term indexes of migration 0016 kept every one- and two-character substring as
  a text[] element: about 440 keys per message, each sorted by the collation's rules,
  182-242 µs of PostgreSQL CPU per 220-character message. They now keep the text's
  distinct pairs as a tsvector (`frontdesk_short_pairs`): lexemes are compared bytewise and
  arrive sorted and unique, 86 µs. A one-character term is a prefix query on the pairs
  (`退:*`): the text's last character is paired with U+0002, so every character of a text
  starts a pair. A text longer than the API's 65,536 characters is marked with the lexeme
  U+0003, which every short query also accepts: such a row is always a candidate (the
  ILIKE decides), and a tsvector never reaches its 1 MB limit.
* `workspace_id` alone was indexed on contacts, contact_identities and conversations, where
  other indexes already begin with it. Besides the write, PostgreSQL without statistics
  (a new database) chose it for the intake's identity lookup and read every identity of
  the workspace for each sender.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# U+0001 separates the pairs while they are cut out by two passes of built-in C functions
# (pairs starting at odd and at even positions; a loop in SQL costs 20 times as much); the
# text's own U+0001-U+0003 are dropped first, so no pair is cut or empty, and a pair that
# straddled a dropped character only adds a candidate. IMMUTABLE like lower() itself.
SHORT_PAIRS_FUNCTION = r"""
CREATE OR REPLACE FUNCTION frontdesk_short_pairs(t text) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN length(t) > 65536 THEN array_to_tsvector(ARRAY[chr(3)])
  ELSE array_to_tsvector(
         string_to_array(rtrim(regexp_replace(s, '(..)', E'\\1\x01', 'g'), chr(1)), chr(1))
      || string_to_array(rtrim(regexp_replace(substr(s, 2), '(..)', E'\\1\x01', 'g'), chr(1)),
                         chr(1)))
  END
  FROM (SELECT translate(lower(t), chr(1) || chr(2) || chr(3), '') || chr(2) AS s) AS cleaned
$$
"""

# The query of a term of one or two characters: its pair, or any pair it begins; or a text
# too long to have been indexed. The term is written as a quoted tsquery lexeme (quotes
# doubled, backslashes escaped), never parsed as words.
SHORT_QUERY_FUNCTION = r"""
CREATE OR REPLACE FUNCTION frontdesk_short_query(term text) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT (chr(39) || replace(replace(lower(term), chr(92), chr(92) || chr(92)),
                             chr(39), chr(39) || chr(39)) || chr(39)
          || CASE WHEN length(term) = 1 THEN ':*' ELSE '' END
          || ' | ' || chr(39) || chr(3) || chr(39))::tsquery
$$
"""

REDUNDANT_WORKSPACE_INDEXES = (
    ("ix_contacts_workspace_id", "contacts"),
    ("ix_contact_identities_workspace_id", "contact_identities"),
    ("ix_conversations_workspace_id", "conversations"),
)

# Migration 0016: the same indexes (by name) and its function, which the downgrade restores.
_0016 = importlib.import_module("frontdesk.db.migrations.versions.0016_short_term_search")


def _rebuild_short_term_indexes(function: str) -> None:
    for name, table, column in _0016.SHORT_TERM_INDEXES:
        op.execute(sa.text(f'DROP INDEX IF EXISTS "{name}"'))
        op.execute(sa.text(
            f'CREATE INDEX "{name}" ON {table} USING gin '
            f"({function}({column})) WITH (fastupdate = on)"))


def upgrade() -> None:
    for name, table in REDUNDANT_WORKSPACE_INDEXES:
        op.drop_index(name, table_name=table, if_exists=True)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(sa.text(SHORT_PAIRS_FUNCTION))
    op.execute(sa.text(SHORT_QUERY_FUNCTION))
    _rebuild_short_term_indexes("frontdesk_short_pairs")
    op.execute(sa.text("DROP FUNCTION IF EXISTS frontdesk_short_grams(text)"))


def downgrade() -> None:
    for name, table in REDUNDANT_WORKSPACE_INDEXES:
        op.create_index(name, table, ["workspace_id"], if_not_exists=True)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(sa.text(_0016.SHORT_GRAMS_FUNCTION))
    _rebuild_short_term_indexes("frontdesk_short_grams")
    op.execute(sa.text("DROP FUNCTION IF EXISTS frontdesk_short_query(text)"))
    op.execute(sa.text("DROP FUNCTION IF EXISTS frontdesk_short_pairs(text)"))
