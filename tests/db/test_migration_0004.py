"""Migration 0004 on a database that already holds conversations: each open conversation's
`waiting_since` becomes its first customer message after the last public reply."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from frontdesk.db.engine import sync_url
from frontdesk.db.migrate import upgrade
from tests.conftest import PG_ADMIN_DSN, _pg_available

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    if not _pg_available():
        pytest.skip("PostgreSQL is not reachable")
    name = f"frontdesk_test_m4_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].split("://", 1)[1]
    try:
        yield f"postgresql+asyncpg://{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _filler(column: sa.Column[Any]) -> Any:
    """A value for a required column this test does not care about."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return 0
    if isinstance(kind, sa.DateTime):
        return T0
    if isinstance(kind, sa.JSON):
        return {}
    return "x"


def _insert(conn: sa.Connection, table: sa.Table, **values: Any) -> int:
    for column in table.c:
        if (column.name not in values and not column.nullable and not column.primary_key
                and column.server_default is None):
            values[column.name] = _filler(column)
    # Timestamps as the app stores them (naive UTC on SQLite).
    if conn.dialect.name == "sqlite":
        values = {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v
                  for k, v in values.items()}
    row = conn.execute(table.insert().values(**values).returning(table.c.id)).one()
    return int(row[0])


def test_waiting_since_is_filled_from_the_messages_already_stored(empty_database: str) -> None:
    upgrade(empty_database, "0003")
    engine = sa.create_engine(sync_url(empty_database))
    at = [T0 + timedelta(minutes=i) for i in range(6)]
    try:
        with engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(conn, only=["workspaces", "inboxes", "contacts", "conversations",
                                       "messages"])
            t = tables.tables
            ws = _insert(conn, t["workspaces"], name=f"m4-{uuid.uuid4().hex[:6]}")
            inbox = _insert(conn, t["inboxes"], workspace_id=ws, name="Shop", channel="api")
            contact = _insert(conn, t["contacts"], workspace_id=ws, name="Ann")

            def conversation(status: str, *kinds: str) -> int:
                cid = _insert(conn, t["conversations"], workspace_id=ws, inbox_id=inbox,
                              contact_id=contact, status=status, priority="none",
                              last_activity_at=at[-1])
                for i, kind in enumerate(kinds):
                    _insert(conn, t["messages"], workspace_id=ws, conversation_id=cid,
                            inbox_id=inbox, message_type=kind,
                            sender_type="contact" if kind == "incoming" else "user",
                            content=kind, delivery_status="sent", created_at=at[i])
                return cid

            answered_then_asked = conversation(
                "open", "incoming", "outgoing", "incoming", "note", "incoming")
            answered = conversation("pending", "incoming", "outgoing", "note")
            never_answered = conversation("snoozed", "incoming", "incoming")
            done = conversation("resolved", "incoming")
        upgrade(empty_database, "0004")
        with engine.connect() as conn:
            rows = dict(conn.execute(sa.text("SELECT id, waiting_since FROM conversations")).all())
    finally:
        engine.dispose()

    def when(value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    assert {cid: when(v) for cid, v in rows.items()} == {
        answered_then_asked: at[2], answered: None, never_answered: at[0], done: None}
    upgrade(empty_database)  # and on to the newest schema
