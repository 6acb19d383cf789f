"""The quarantine keeps one row per (inbox, mail): the same mail delivered again, over real
SMTP (an MTA retrying) or fetched again by IMAP, is listed once, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy import func, select

from frontdesk.channels.email.models import QuarantinedEmail
from frontdesk.channels.email.service import receive_email
from frontdesk.channels.email.smtp_server import SmtpServer
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail
from tests.factories import Factory, Workspace, unique
from tests.integration.email.smtp_tools import running_smtp_server


@pytest.fixture
async def smtp(runtime: Runtime) -> AsyncIterator[SmtpServer]:
    async with running_smtp_server(runtime) as server:
        yield server


async def deliver(server: SmtpServer, raw: bytes, sender: str, recipient: str) -> int:
    """One SMTP transaction; the code the server answered the mail with."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.bound_port, start_tls=False,
                             timeout=30)
    async with client:
        await client.ehlo()
        await client.mail(sender)
        await client.rcpt(recipient)
        code, _ = await client.data(raw)
    return code


async def quarantine_of(api: httpx.AsyncClient, ws: Workspace) -> list[dict[str, Any]]:
    r = await api.get("/api/v1/email/quarantine", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return list(r.json())


async def rows_in(runtime: Runtime, inbox_id: int) -> int:
    async with runtime.read_sessions() as session:
        return int((await session.execute(
            select(func.count()).select_from(QuarantinedEmail)
            .where(QuarantinedEmail.inbox_id == inbox_id))).scalar_one())


def anonymous_mail() -> bytes:
    """A mail naming no sender: it can only be quarantined."""
    return (f"To: someone\r\nSubject: {unique('who am I')}\r\n\r\n"
            "nobody signed this\r\n").encode()


async def test_a_malformed_mail_delivered_again_over_smtp_is_quarantined_once(
        smtp: SmtpServer, factory: Factory, api: httpx.AsyncClient, runtime: Runtime) -> None:
    ws = await factory.workspace()
    inbox_id, address = await factory.email_inbox(ws)
    raw = anonymous_mail()
    envelope_sender = f"{unique('mta')}@relay.example"
    # The MTA did not hear our 250 (or got a 451 for another recipient) and delivers again.
    assert await deliver(smtp, raw, envelope_sender, address) == 250
    assert await deliver(smtp, raw, envelope_sender, address) == 250
    [row] = await quarantine_of(api, ws)
    assert row["reason_code"] == "no_sender" and row["envelope_sender"] == envelope_sender
    assert await rows_in(runtime, inbox_id) == 1
    r = await api.get(f"/api/v1/email/quarantine/{row['id']}/raw", headers=ws.admin.headers)
    assert r.status_code == 200 and r.content == raw
    # Another malformed mail is another row.
    assert await deliver(smtp, anonymous_mail(), envelope_sender, address) == 250
    assert len(await quarantine_of(api, ws)) == 2


async def test_a_mail_fetched_twice_by_imap_keeps_one_row_per_inbox(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime) -> None:
    ws = await factory.workspace()
    inbox_id, _ = await factory.email_inbox(ws)
    other_inbox_id, _ = await factory.email_inbox(ws)
    raw = b"\r\n\r\n" + unique("garbage").encode()
    first = await receive_email(runtime, raw, inbox_id=inbox_id, envelope_recipients=(),
                                source="imap")
    again = await receive_email(runtime, raw, inbox_id=inbox_id, envelope_recipients=(),
                                source="imap")
    assert first.status == again.status == "quarantined"
    assert again.quarantine_id == first.quarantine_id
    # The same bytes fetched for another inbox are that inbox's own row.
    elsewhere = await receive_email(runtime, raw, inbox_id=other_inbox_id,
                                    envelope_recipients=(), source="imap")
    assert elsewhere.quarantine_id not in (None, first.quarantine_id)
    listed = [row["id"] for row in await quarantine_of(api, ws)]
    assert sorted(listed) == sorted([first.quarantine_id, elsewhere.quarantine_id])
    # Re-processing it (still unreadable) keeps the one row, and a later copy joins it.
    r = await api.post(f"/api/v1/email/quarantine/{first.quarantine_id}/reprocess",
                       headers=ws.admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "quarantined", r.text
    later = await receive_email(runtime, raw, inbox_id=inbox_id, envelope_recipients=(),
                                source="imap")
    assert later.quarantine_id == first.quarantine_id
    assert await rows_in(runtime, inbox_id) == 1


async def test_a_rate_limited_mail_delivered_again_is_kept_once_and_stored_once_let_in(
        smtp: SmtpServer, factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = await factory.workspace()
    inbox_id, address = await factory.email_inbox(ws)
    sender = f"{unique('storm')}@customer.example"
    monkeypatch.setattr(runtime.settings, "email_rate_limit_count", 1)
    assert await deliver(smtp, make_mail(sender=sender, to=address), sender, address) == 250
    over = make_mail(sender=sender, to=address, subject="Again")
    assert await deliver(smtp, over, sender, address) == 250
    assert await deliver(smtp, over, sender, address) == 250
    [row] = await quarantine_of(api, ws)
    assert row["reason_code"] == "rate_limited"
    r = await api.post(f"/api/v1/email/quarantine/{row['id']}/reprocess",
                       headers=ws.admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "stored", r.text
    # Let in, the row is history; the mail again is a duplicate of the stored message.
    assert await deliver(smtp, over, sender, address) == 250
    assert await quarantine_of(api, ws) == []
    assert await rows_in(runtime, inbox_id) == 1
