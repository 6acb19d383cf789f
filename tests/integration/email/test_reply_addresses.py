"""Who a reply is from and to, end to end on both databases (the real SMTP server in, the
outbox listener and sender out to a recording relay):

- a display name that decodes to a line break cannot break the reply's headers, and does
  not stop the conversation's replies."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import insert

from frontdesk.channels.email.models import EmailParticipant
from frontdesk.channels.email.service import receive_email
from frontdesk.channels.email.smtp_server import SmtpServer
from frontdesk.db.base import utcnow
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail, new_message_id
from tests.factories import Factory, Workspace
from tests.integration.email.smtp_tools import Captured, RecordingRelay
from tests.integration.email.test_smtp_loop import (
    customer,
    delivery_of,
    send,
    stored_messages,
    wait_for_outbound,
)
from tests.processes import free_port

_LINE_BREAKS = "\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@pytest.fixture
async def smtp(runtime: Runtime) -> AsyncIterator[SmtpServer]:
    server = SmtpServer(runtime, "127.0.0.1", free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def relay(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> RecordingRelay:
    with RecordingRelay() as recording:
        monkeypatch.setattr(runtime.settings, "smtp_relay_host", "127.0.0.1")
        monkeypatch.setattr(runtime.settings, "smtp_relay_port", recording.port)
        monkeypatch.setattr(runtime.settings, "smtp_relay_security", "none")
        yield recording


def encoded(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


async def reply(api: httpx.AsyncClient, runtime: Runtime, relay: RecordingRelay,
                ws: Workspace, conversation_id: int, to: str, content: str) -> Captured:
    """An agent's reply-all in the conversation, as the relay received it (sent)."""
    before = len([m for m in relay.received if to in m.rcpt_tos])
    r = await api.post(f"/api/v1/conversations/{conversation_id}/messages",
                       headers=ws.admin.headers, json={"content": content})
    assert r.status_code == 201, r.text
    await wait_for_outbound(runtime, r.json()["id"])
    for _ in range(20):
        if not await runtime.email_sender.send_due():
            break
    mails = [m for m in relay.received if to in m.rcpt_tos]
    assert len(mails) == before + 1, [m.rcpt_tos for m in relay.received]
    status, error, _ = await delivery_of(runtime, r.json()["id"])
    assert (status, error) == ("sent", None)
    return mails[-1]


# --- names that decode to line breaks ------------------------------------------------------


async def test_a_name_hiding_a_line_break_cannot_break_the_reply_all(
        smtp: SmtpServer, factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
        relay: RecordingRelay) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender, colleague, victim = customer(), customer(), customer()
    raw = (f"From: {encoded(f'Evil{chr(13)}{chr(10)}Bcc: {victim}')} <{sender}>\r\n"
           f"To: {address}\r\n"
           f"Cc: {encoded(f'Ann{chr(0x2028)}X-Injected: yes{chr(0)}')} <{colleague}>\r\n"
           f"Subject: {encoded(f'Invoice{chr(10)}X-Injected: yes')}\r\n"
           f"Message-ID: {new_message_id()}\r\n\r\nPlease look.\r\n").encode()
    await send(smtp, raw, sender, [address])
    [incoming] = await stored_messages(api, ws)

    captured = await reply(api, runtime, relay, ws, incoming["conversation_id"], sender,
                           "Looking into it.")
    assert sorted(captured.rcpt_tos) == sorted([sender, colleague])  # never the victim
    mail = captured.message
    assert mail["To"] == f'"Evil Bcc: {victim}" <{sender}>'
    assert mail["Cc"] == f'"Ann X-Injected: yes" <{colleague}>'
    assert mail["Subject"] == "Re: Invoice X-Injected: yes"
    assert mail["Bcc"] is None and mail["X-Injected"] is None
    head = captured.raw.split(b"\r\n\r\n", 1)[0].decode()
    assert not any(c in line for line in head.split("\r\n") for c in _LINE_BREAKS)


async def test_a_name_stored_with_a_line_break_before_the_fix_no_longer_stops_replies(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
        relay: RecordingRelay) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender, colleague = customer(), customer()
    received = await receive_email(runtime, make_mail(sender=sender, to=address),
                                   inbox_id=None, envelope_recipients=[address], source="test")
    assert received.conversation_id is not None
    # A participant as the parser kept it before names were made one line.
    async with runtime.sessions() as session, session.begin():
        await session.execute(insert(EmailParticipant).values(
            conversation_id=received.conversation_id, address=colleague,
            workspace_id=ws.id, name="Evil\nBcc: victim@example.com", created_at=utcnow()))

    captured = await reply(api, runtime, relay, ws, received.conversation_id, sender, "Hello")
    assert sorted(captured.rcpt_tos) == sorted([sender, colleague])
    assert captured.message["Cc"] == f'"Evil Bcc: victim@example.com" <{colleague}>'
