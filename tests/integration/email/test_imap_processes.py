"""IMAP polling in real processes, against the private Dovecot: `frontdesk serve` killed
with SIGKILL in the middle of a mailbox loses and doubles nothing; two `frontdesk worker`
processes never poll one mailbox at once, and the survivor takes over from a dead one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select

from frontdesk.channels.email.imap_models import ImapMailbox
from frontdesk.conversations.models import Message
from frontdesk.db.engine import make_sync_engine
from tests.channels.email.mailmaker import make_mail
from tests.dovecot import Dovecot
from tests.integration.conftest import need
from tests.processes import Cluster, Server, Tenant, eventually

pytestmark = pytest.mark.slow


def stored_counts(database_url: str, inbox_id: int) -> dict[str, int]:
    engine = make_sync_engine(database_url, pooled=False)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Message.external_id, func.count())
                                .where(Message.inbox_id == inbox_id)
                                .group_by(Message.external_id)).all()
    finally:
        engine.dispose()
    return {str(external_id): int(count) for external_id, count in rows}


def lease_of(database_url: str, inbox_id: int) -> tuple[str | None, int]:
    engine = make_sync_engine(database_url, pooled=False)
    try:
        with engine.connect() as conn:
            owner, last_uid = conn.execute(select(ImapMailbox.lease_owner, ImapMailbox.last_uid)
                                           .where(ImapMailbox.inbox_id == inbox_id)).one()
    finally:
        engine.dispose()
    return owner, int(last_uid)


def imap_env(server: Dovecot, **extra: str) -> dict[str, str]:
    return {"FRONTDESK_IMAP_ALLOW_PRIVATE": "1", "FRONTDESK_IMAP_CA_FILE": str(server.ca_file),
            "FRONTDESK_EMAIL_RATE_LIMIT_COUNT": "100000", **extra}


async def email_inbox_polling(server: Server, tenant: Tenant, imap: Dovecot,
                              folder: str) -> int:
    address = f"support-{uuid.uuid4().hex[:6]}@imap-proc.example"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        r = await client.post(f"{server.url}/api/v1/inboxes", headers=tenant.headers,
                              json={"name": "Support", "channel": "email", "email": address})
        assert r.status_code == 201, r.text
        inbox_id = int(r.json()["id"])
        r = await client.put(f"{server.url}/api/v1/inboxes/{inbox_id}/imap",
                             headers=tenant.headers,
                             json={"host": imap.host, "port": imap.tls_port, "tls": "tls",
                                   "username": imap.user, "password": imap.password,
                                   "mailbox": folder})
        assert r.status_code == 200, r.text
    return inbox_id


def append_mails(imap: Dovecot, folder: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        message_id = f"{uuid.uuid4().hex}@customer.example"
        imap.append(make_mail(sender=f"customer{n % 5}@customer.example", to="support@x.example",
                              subject=f"Mail {n}", message_id=f"<{message_id}>"), folder)
        ids.append(message_id)
    return ids


async def test_a_killed_server_resumes_its_mailbox_without_loss_or_duplicates(
        make_cluster: Callable[[str], Cluster], dovecot: Dovecot) -> None:
    cluster = make_cluster("sqlite")
    # A short lease: the restarted server (a new owner) may take the mailbox soon after.
    env = imap_env(dovecot, FRONTDESK_IMAP_LEASE_SECONDS="4")
    server = cluster.start_server(**env).ready()
    tenant = await cluster.tenant()
    imap = dovecot.new_user()
    folder = imap.new_folder()
    expected = append_mails(imap, folder, 80)
    inbox_id = await email_inbox_polling(server, tenant, imap, folder)

    await eventually(lambda: len(stored_counts(cluster.database_url, inbox_id)),
                     lambda n: n >= 10, timeout=60, what="the first mails stored",
                     explain=cluster.explain, every=0.01)
    server.kill()  # SIGKILL, somewhere in the middle of the mailbox
    expected += append_mails(imap, folder, 10)  # mail arriving while it is down

    cluster.start_server(**env).ready()
    counts = await eventually(lambda: stored_counts(cluster.database_url, inbox_id),
                              lambda c: len(c) >= len(expected), timeout=90,
                              what="every mail stored", explain=cluster.explain)
    assert set(counts) == set(expected)
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(
            "\\Seen" in f for f in imap.flags(folder).values()):
        time.sleep(0.2)
    assert all("\\Seen" in flags for flags in imap.flags(folder).values())
    assert lease_of(cluster.database_url, inbox_id)[1] == len(expected)


async def test_two_workers_never_poll_one_mailbox_and_one_takes_over_from_a_dead_one(
        make_cluster: Callable[[str], Cluster], dovecot: Dovecot) -> None:
    need("postgresql")
    cluster = make_cluster("postgresql")
    env = imap_env(dovecot, FRONTDESK_IMAP_LEASE_SECONDS="4", FRONTDESK_IMAP_SCAN_SECONDS="1")
    server = cluster.start_server(embedded_worker=False, **env)
    workers = [cluster.start_worker(**env) for _ in range(2)]
    server.ready()
    for worker in workers:
        worker.ready()
    tenant = await cluster.tenant()
    imap = dovecot.new_user()
    folder = imap.new_folder()
    expected = append_mails(imap, folder, 30)
    inbox_id = await email_inbox_polling(server, tenant, imap, folder)

    counts = await eventually(lambda: stored_counts(cluster.database_url, inbox_id),
                              lambda c: len(c) >= len(expected), timeout=90,
                              what="every mail stored", explain=cluster.explain)
    assert set(counts) == set(expected) and set(counts.values()) == {1}
    owner, _ = lease_of(cluster.database_url, inbox_id)
    assert owner is not None
    holder = next(w for w in workers if f":{w.pid}:" in owner)
    survivor = next(w for w in workers if w is not holder)
    # The other worker never takes it while the holder lives (it scans every second).
    for _ in range(20):
        assert lease_of(cluster.database_url, inbox_id)[0] == owner
        time.sleep(0.1)

    holder.kill()
    expected += append_mails(imap, folder, 10)
    counts = await eventually(lambda: stored_counts(cluster.database_url, inbox_id),
                              lambda c: len(c) >= len(expected), timeout=60,
                              what="the survivor storing the new mail",
                              explain=cluster.explain)
    assert set(counts) == set(expected) and set(counts.values()) == {1}
    assert f":{survivor.pid}:" in str(lease_of(cluster.database_url, inbox_id)[0])
