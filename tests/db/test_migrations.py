"""The migration history and the models describe the same schema, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from frontdesk.db.engine import sync_url
from frontdesk.db.migrate import upgrade
from frontdesk.db.models import Base
from frontdesk.db.search import schema_objects_on


def test_the_migrated_schema_matches_the_models(backend: str) -> None:
    # A plain reader: the writer engines BEGIN IMMEDIATE, which would queue behind the
    # running app's writes on SQLite for no reason.
    engine = create_engine(sync_url(backend))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "include_object": schema_objects_on(conn.dialect.name)})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_migrating_twice_is_harmless(backend: str) -> None:
    upgrade(backend)
    upgrade(backend)
