"""Two `frontdesk worker` processes on one PostgreSQL database, both waking at the moment a
burst of scheduled replies falls due: every reply is sent exactly once (the claim is FOR
UPDATE SKIP LOCKED, and the message is stored in the claiming transaction)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import psycopg
import pytest

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.channels.service import create_inbox
from frontdesk.contacts.models import Contact
from frontdesk.conversations.models import Conversation, ScheduledMessage
from frontdesk.db.base import utcnow
from frontdesk.db.engine import make_async_engine, make_sessionmaker
from tests.processes import Cluster, eventually, sync_dsn

pytestmark = pytest.mark.slow

CONVERSATIONS = 20
REPLIES_EACH = 15  # 300 replies: six of the sender's batches of 50
DUE_IN = timedelta(seconds=8)  # past a poll interval (5 s): both workers wake at the due time


async def _schedule_burst(cluster: Cluster, workspace_id: int, user_id: int) -> list[int]:
    engine = make_async_engine(cluster.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            admin = Principal(user_id, workspace_id, Role.ADMIN)
            inbox = await create_inbox(session, admin, name="API", channel="api")
            due = utcnow() + DUE_IN
            conversations = []
            for n in range(CONVERSATIONS):
                contact = Contact(workspace_id=workspace_id, name=f"Customer {n}")
                session.add(contact)
                await session.flush()
                conversation = Conversation(workspace_id=workspace_id, inbox_id=inbox.id,
                                            contact_id=contact.id, custom_fields={})
                session.add(conversation)
                await session.flush()
                conversations.append(conversation.id)
            # Round robin: in due order the replies hop from conversation to conversation,
            # so both workers' batches take the locks of many of the same conversations.
            rows = [ScheduledMessage(workspace_id=workspace_id, conversation_id=cid,
                                     author_user_id=user_id, content=f"reply {cid}-{k}",
                                     send_at=due)
                    for k in range(REPLIES_EACH) for cid in reversed(conversations)]
            session.add_all(rows)
            await session.commit()
            return [r.id for r in rows]
    finally:
        await engine.dispose()


@dataclass
class Outcome:
    statuses: dict[str, int]  # scheduled rows by status
    sent: Counter[str]  # outgoing messages by text
    linked: int  # distinct messages the sent rows point at


def _outcome(dsn: str, workspace_id: int) -> Outcome:
    with psycopg.connect(dsn, autocommit=True) as conn:
        statuses: dict[str, int] = {status: count for status, count in conn.execute(
            "SELECT status, count(*) FROM scheduled_messages WHERE workspace_id = %s "
            "GROUP BY status", (workspace_id,)).fetchall()}
        sent = conn.execute(
            "SELECT content FROM messages WHERE workspace_id = %s AND message_type = 'outgoing'",
            (workspace_id,)).fetchall()
        linked = conn.execute(
            "SELECT count(DISTINCT message_id) FROM scheduled_messages WHERE workspace_id = %s "
            "AND status = 'sent'", (workspace_id,)).fetchone()
    return Outcome(statuses, Counter(c for (c,) in sent), int(linked[0]) if linked else 0)


async def test_two_workers_send_each_scheduled_reply_once(
    make_cluster: Callable[[str], Cluster],
) -> None:
    cluster = make_cluster("postgresql")
    workers = [cluster.start_worker(), cluster.start_worker()]
    tenant = await cluster.tenant()
    for worker in workers:
        worker.ready()
    dsn = sync_dsn(cluster.database_url)
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT user_id FROM memberships WHERE workspace_id = %s",
                           (tenant.workspace_id,)).fetchone()
    assert row is not None
    ids = await _schedule_burst(cluster, tenant.workspace_id, row[0])
    total = len(ids)

    outcome = await eventually(
        lambda: _outcome(dsn, tenant.workspace_id), lambda o: o.statuses == {"sent": total},
        timeout=60, what=f"{total} scheduled replies sent", explain=cluster.explain, every=0.5)
    assert len(outcome.sent) == total and max(outcome.sent.values()) == 1, (
        f"{sum(outcome.sent.values()) - total} replies sent twice")
    assert outcome.linked == total  # each row points at a message of its own
    for worker in workers:
        assert worker.alive(), worker.explain()
        # No batch had to be retried: the senders never deadlocked on conversation locks.
        assert "sending scheduled replies failed" not in worker.log(tail=10_000), worker.log()
