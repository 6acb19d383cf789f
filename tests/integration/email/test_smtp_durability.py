"""A real `frontdesk serve` killed with SIGKILL while mail is being delivered to its SMTP
server: after the restart, every mail it accepted with 250 is stored exactly once, and
the MTA's retries of the rest (no answer, or a cut connection) are stored once too."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import aiosmtplib
import httpx
import pytest
from sqlalchemy import func, select

from frontdesk.conversations.models import Message
from frontdesk.db.engine import make_sync_engine
from tests.channels.email.mailmaker import make_mail
from tests.integration.conftest import need
from tests.processes import Cluster, eventually, free_port

pytestmark = pytest.mark.slow

MAILS = 120
SENDERS = 4  # concurrent SMTP connections, as an MTA's queue runners


def stored_counts(database_url: str, inbox_id: int) -> dict[str, int]:
    """Message-ID → how many messages the inbox holds with it."""
    engine = make_sync_engine(database_url, pooled=False)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Message.external_id, func.count())
                .where(Message.inbox_id == inbox_id).group_by(Message.external_id)
            ).all()
    finally:
        engine.dispose()
    return {str(external_id): int(count) for external_id, count in rows}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_mail_accepted_before_a_kill_is_stored_exactly_once(
        kind: str, make_cluster: Callable[[str], Cluster]) -> None:
    if kind == "postgresql":
        need("postgresql")
    cluster = make_cluster(kind)
    smtp_port = free_port()
    env = {"FRONTDESK_SMTP_PORT": str(smtp_port),
           "FRONTDESK_EMAIL_RATE_LIMIT_COUNT": "100000"}
    server = cluster.start_server(**env).ready()
    tenant = await cluster.tenant()
    address = f"support-{uuid.uuid4().hex[:6]}@durable.example"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        r = await client.post(f"{server.url}/api/v1/inboxes", headers=tenant.headers,
                              json={"name": "Support", "channel": "email", "email": address})
        assert r.status_code == 201, r.text
        inbox_id = int(r.json()["id"])

    by_id = {}
    for n in range(MAILS):
        message_id = f"{uuid.uuid4().hex}@customer.example"
        by_id[message_id] = make_mail(sender=f"customer{n % 7}@customer.example", to=address,
                                      subject=f"Mail {n}", body=f"Mail number {n}",
                                      message_id=f"<{message_id}>")
    queue: asyncio.Queue[str] = asyncio.Queue()
    for message_id in by_id:
        queue.put_nowait(message_id)
    accepted: list[str] = []
    refused_attempts = 0

    async def mta() -> None:
        nonlocal refused_attempts
        while True:
            try:
                message_id = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            while True:
                try:
                    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port,
                                           start_tls=False, timeout=10)
                    async with smtp:
                        await smtp.sendmail("mta@customer.example", [address], by_id[message_id])
                    accepted.append(message_id)  # the 250 came back
                    break
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    # No answer, a cut connection, 4xx: the MTA keeps it and tries again.
                    refused_attempts += 1
                    await asyncio.sleep(0.2)

    runners = [asyncio.create_task(mta()) for _ in range(SENDERS)]
    await eventually(lambda: len(accepted), lambda n: n >= MAILS // 4, timeout=60,
                     what="a quarter of the mails accepted", explain=cluster.explain)
    server.kill()  # SIGKILL in the middle of the deliveries
    killed_at = len(accepted)
    accepted_before_kill = set(accepted)
    time.sleep(0.3)
    cluster.start_server(**env).ready()
    await asyncio.wait_for(asyncio.gather(*runners), timeout=120)

    counts = stored_counts(cluster.database_url, inbox_id)
    assert killed_at < MAILS, "the kill came after every mail was delivered"
    assert set(accepted) == set(by_id)
    assert accepted_before_kill <= set(counts)
    assert counts == {message_id: 1 for message_id in by_id}, {
        k: v for k, v in counts.items() if v != 1}
    assert refused_attempts > 0  # the kill was felt by the senders
