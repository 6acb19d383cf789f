"""Scheduled replies benchmark: N replies fall due at one moment; W `frontdesk worker`
processes on a scratch PostgreSQL database send them. Prints how long after the due time
the last one was sent, the rate, and how many were sent twice (must be 0).

    .venv/bin/python bench/scheduled_replies.py --workers 2 --conversations 100 --each 20

Needs the local PostgreSQL (127.0.0.1:5432, trust) that the tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import psycopg

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.channels.service import create_inbox
from frontdesk.contacts.models import Contact
from frontdesk.conversations.models import Conversation, ScheduledMessage
from frontdesk.db.base import utcnow
from frontdesk.db.engine import make_async_engine, make_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' process tools
from tests.processes import Cluster, scratch_database, sync_dsn

LEAD = timedelta(seconds=10)  # the workers are idle and asleep until the burst is due


async def schedule(url: str, workspace_id: int, user_id: int, conversations: int,
                   each: int) -> int:
    engine = make_async_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            admin = Principal(user_id, workspace_id, Role.ADMIN)
            inbox = await create_inbox(session, admin, name="API", channel="api")
            due = utcnow() + LEAD
            for n in range(conversations):
                contact = Contact(workspace_id=workspace_id, name=f"Customer {n}")
                session.add(contact)
                await session.flush()
                conversation = Conversation(workspace_id=workspace_id, inbox_id=inbox.id,
                                            contact_id=contact.id, custom_fields={})
                session.add(conversation)
                await session.flush()
                session.add_all(ScheduledMessage(
                    workspace_id=workspace_id, conversation_id=conversation.id,
                    author_user_id=user_id, content=f"reply {n}-{k}", send_at=due)
                    for k in range(each))
            await session.commit()
        return conversations * each
    finally:
        await engine.dispose()


def sent(dsn: str, workspace_id: int) -> tuple[int, Counter[str]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM scheduled_messages WHERE workspace_id = %s "
                           "AND status = 'sent'", (workspace_id,)).fetchone()
        texts = conn.execute("SELECT content FROM messages WHERE workspace_id = %s AND "
                             "message_type = 'outgoing'", (workspace_id,)).fetchall()
    return (row[0] if row else 0), Counter(t for (t,) in texts)


async def main(workers: int, conversations: int, each: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, scratch_database("postgresql", Path(tmp)) as url:
        cluster = Cluster(url, Path(tmp))
        try:
            procs = [cluster.start_worker() for _ in range(workers)]
            tenant = await cluster.tenant()
            for proc in procs:
                proc.ready()
            dsn = sync_dsn(url)
            with psycopg.connect(dsn) as conn:
                row = conn.execute("SELECT user_id FROM memberships WHERE workspace_id = %s",
                                   (tenant.workspace_id,)).fetchone()
            assert row is not None
            started = time.monotonic()
            total = await schedule(url, tenant.workspace_id, row[0], conversations, each)
            due = started + LEAD.total_seconds()
            while (done := sent(dsn, tenant.workspace_id))[0] < total:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # polling the database is what is measured against
            took = time.monotonic() - due
            twice = sum(done[1].values()) - len(done[1])
            print(f"workers={workers} replies={total}: all sent {took:.2f} s after they fell "
                  f"due ({total / took:.0f}/s); sent twice: {twice}; "
                  f"load average {os.getloadavg()[0]:.2f}")
        finally:
            cluster.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--each", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.workers, args.conversations, args.each))
