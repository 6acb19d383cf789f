"""Migration 0015 on a database that already holds e-mail conversations: a conversation
that automatic mail opened, and that no person has written in since, is flagged
automatic; any other is not."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from frontdesk.db.engine import sync_url
from frontdesk.db.migrate import upgrade
from tests.db.test_migration_0004 import T0, _filler, _insert, empty_database

__all__ = ["empty_database"]  # the fixture, shared with test_migration_0004


def _insert_record(conn: sa.Connection, table: sa.Table, **values: Any) -> None:
    """An e-mail record (keyed by its message, no id of its own)."""
    for column in table.c:
        if (column.name not in values and not column.nullable
                and column.server_default is None):
            values[column.name] = _filler(column)
    if conn.dialect.name == "sqlite":
        values = {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v
                  for k, v in values.items()}
    conn.execute(table.insert().values(**values))


def test_conversations_automatic_mail_opened_are_flagged(empty_database: str) -> None:
    upgrade(empty_database, "0014")
    engine = sa.create_engine(sync_url(empty_database))
    try:
        with engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(conn, only=["workspaces", "inboxes", "contacts", "conversations",
                                       "messages", "email_messages"])
            t = tables.tables
            ws = _insert(conn, t["workspaces"], name=f"m14-{uuid.uuid4().hex[:6]}")
            inbox = _insert(conn, t["inboxes"], workspace_id=ws, name="Mail", channel="email")
            contact = _insert(conn, t["contacts"], workspace_id=ws, name="Ann")

            def conversation(*mails: tuple[str, str | None]) -> int:
                """(message type, automatic kind of its e-mail record or None)."""
                cid = _insert(conn, t["conversations"], workspace_id=ws, inbox_id=inbox,
                              contact_id=contact, status="open", priority="none",
                              last_activity_at=T0)
                for i, (kind, automatic) in enumerate(mails):
                    mid = _insert(conn, t["messages"], workspace_id=ws, conversation_id=cid,
                                  inbox_id=inbox, message_type=kind,
                                  sender_type="contact" if kind == "incoming" else "user",
                                  content=kind, delivery_status="sent",
                                  created_at=T0 + timedelta(minutes=i))
                    _insert_record(conn, t["email_messages"], message_id=mid,
                                   workspace_id=ws, inbox_id=inbox, conversation_id=cid,
                                   direction="inbound" if kind == "incoming" else "outbound",
                                   automatic_kind=automatic, to_addresses=[],
                                   cc_addresses=[], reference_ids=[], defects=[],
                                   forwarded=[], created_at=T0)
                return cid

            alert = conversation(("incoming", "auto-generated"), ("outgoing", None),
                                 ("incoming", "auto-generated"))
            alert_then_person = conversation(("incoming", "auto-generated"),
                                             ("incoming", None))
            person_then_out_of_office = conversation(("incoming", None),
                                                     ("incoming", "auto-replied"))
            person = conversation(("incoming", None))
        upgrade(empty_database, "0015")
        with engine.connect() as conn:
            rows = dict(conn.execute(sa.text("SELECT id, automatic FROM conversations")).all())
    finally:
        engine.dispose()
    assert {cid: bool(flag) for cid, flag in rows.items()} == {
        alert: True, alert_then_person: False, person_then_out_of_office: False,
        person: False}
    upgrade(empty_database)  # and on to the newest schema
