"""Substring search that PostgreSQL can answer from an index.

The inbox's text search is `column ILIKE '%term%'`: no B-tree helps with a leading
wildcard, so at a million messages it read every row. A trigram GIN index (pg_trgm) turns
the same ILIKE into a bitmap index scan for terms of three characters or more (migration
0009; a database where the migration could not create the extension keeps the scan).

pg_trgm extracts no trigram from a shorter term, and two characters are a whole word in
Chinese (退款, 发票) or an order number's fragment. For those, a second GIN index per column
holds the distinct pairs of characters of the lowercased text as a tsvector
(`frontdesk_short_pairs`, migrations 0016 and 0017, plain SQL: no extension needed; the last
character is paired with U+0002). "Contains `ab`" becomes "has the pair `ab`", and
"contains `a`" "has a pair beginning with `a`" (a prefix query), which the index answers.

Either index only narrows: the ILIKE stays in the query and decides, so results are the
same with or without them. SQLite keeps its scan: it has no such index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Index, SQLColumnExpression, func, literal_column, text
from sqlalchemy.schema import SchemaItem

# Index.info key of an index that exists only on PostgreSQL (Alembic cannot see ddl_if).
POSTGRESQL_ONLY = "postgresql_only"


def trigram_index(name: str, column: str) -> Index:
    """A PostgreSQL-only trigram index on `column`, as migration 0009 creates it."""
    # fastupdate queues new entries in a pending list merged in bulk (at VACUUM or when the
    # list fills) instead of touching one posting tree per trigram on every insert: intake
    # writes every message, so its cost is what this index must keep small.
    return Index(
        name, column,
        postgresql_using="gin",
        postgresql_ops={column: "gin_trgm_ops"},
        postgresql_with={"fastupdate": "on"},
        info={POSTGRESQL_ONLY: True},
    ).ddl_if(dialect="postgresql")


# The longest term the short-term indexes answer: pg_trgm serves longer ones.
SHORT_TERM_LENGTH = 2
# What frontdesk_short_pairs drops from a text before pairing (migration 0017: U+0001
# separates pairs while they are cut, U+0002 ends the text, U+0003 marks a text too long to
# index): a term containing one is never looked up in the short-term index.
UNPAIRED = frozenset("\x01\x02\x03")


def short_term_index(name: str, column: str) -> Index:
    """A PostgreSQL-only index of the character pairs of `column`, as migration 0017
    creates it."""
    # fastupdate as for the trigram indexes: intake writes every message.
    return Index(
        name, text(f"frontdesk_short_pairs({column})"),
        postgresql_using="gin",
        postgresql_with={"fastupdate": "on"},
        info={POSTGRESQL_ONLY: True},
    ).ddl_if(dialect="postgresql")


def is_short_term(term: str) -> bool:
    """Whether the short-term indexes answer `term` (and pg_trgm would not)."""
    return 0 < len(term) <= SHORT_TERM_LENGTH and UNPAIRED.isdisjoint(term)


def short_pairs_match(column: SQLColumnExpression[Any], term: str) -> ColumnElement[bool]:
    """The condition the short-term index of `column` answers: the lowercased column has
    the lowercased `term` as one of its pairs (two characters) or begins a pair with it
    (one), or was too long to index. True of every row whose column contains `term`
    case-insensitively (ILIKE lowercases both sides the same way), and of a few more: it
    narrows, the ILIKE decides. PostgreSQL only."""
    return func.frontdesk_short_pairs(column).bool_op("@@")(func.frontdesk_short_query(term))


def unindexed(column: SQLColumnExpression[Any]) -> ColumnElement[str]:
    """`column || ''`: the same text, in which no trigram index can be used. A short term's
    ILIKE only decides among the short-term index's rows; from a cached generic plan, where
    the pattern is an unknown parameter, PostgreSQL would otherwise also read the trigram
    index for it, which a pattern of two characters matches in full (1 s at 1M messages,
    measured)."""
    return column.op("||")(literal_column("''"))


def schema_objects_on(
    dialect_name: str,
) -> Callable[[SchemaItem, str | None, str, bool, SchemaItem | None], bool]:
    """Alembic's include_object for `dialect_name`: the models' PostgreSQL-only indexes are
    not expected in (nor proposed for) another database."""

    def include(item: SchemaItem, _name: str | None, type_: str, reflected: bool,
                _compare_to: SchemaItem | None) -> bool:
        return not (type_ == "index" and not reflected and dialect_name != "postgresql"
                    and item.info.get(POSTGRESQL_ONLY, False))

    return include
