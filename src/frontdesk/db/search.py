"""Substring search that PostgreSQL can answer from an index.

The inbox's text search is `column ILIKE '%term%'`: no B-tree helps with a leading
wildcard, so at a million messages it read every row. A trigram GIN index (pg_trgm) turns
the same ILIKE into a bitmap index scan. The index only narrows: PostgreSQL rechecks every
candidate row with the ILIKE itself, so results are the same with or without it (a term
shorter than three characters, or a database where the migration could not create the
extension, simply falls back to the scan). SQLite keeps its scan: it has no such index.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Index
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
