"""Two `frontdesk serve` processes on one host (PostgreSQL) share the SMTP port as they share
the HTTP load: both start, and mail delivered to the port is stored, whichever takes it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import aiosmtplib
import httpx
import pytest

from tests.channels.email.mailmaker import make_mail
from tests.integration.conftest import need
from tests.integration.email.test_smtp_durability import stored_counts
from tests.processes import Cluster, free_port

pytestmark = pytest.mark.slow


async def test_two_servers_on_one_host_share_the_smtp_port(
        make_cluster: Callable[[str], Cluster]) -> None:
    need("postgresql")
    cluster = make_cluster("postgresql")
    smtp_port = free_port()
    first = cluster.start_server(FRONTDESK_SMTP_PORT=str(smtp_port)).ready()
    second = cluster.start_server(FRONTDESK_SMTP_PORT=str(smtp_port)).ready()
    tenant = await cluster.tenant()
    address = f"support-{uuid.uuid4().hex[:6]}@shared.example"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        r = await client.post(f"{first.url}/api/v1/inboxes", headers=tenant.headers,
                              json={"name": "Support", "channel": "email", "email": address})
        assert r.status_code == 201, r.text
        inbox_id = int(r.json()["id"])
        assert (await client.get(f"{second.url}/healthz")).status_code == 200
    sent = []
    for n in range(20):  # new connections: the kernel spreads them over both processes
        message_id = f"{uuid.uuid4().hex}@customer.example"
        mail = make_mail(sender=f"c{n}@customer.example", to=address, subject=f"Mail {n}",
                         body="Hello", message_id=f"<{message_id}>")
        await aiosmtplib.send(mail, sender=f"c{n}@customer.example", recipients=[address],
                              hostname="127.0.0.1", port=smtp_port, timeout=30)
        sent.append(message_id)
    counts = stored_counts(cluster.database_url, inbox_id)
    assert counts == {message_id: 1 for message_id in sent}
