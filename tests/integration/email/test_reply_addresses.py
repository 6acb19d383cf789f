"""Who a reply is from and to, end to end on both databases (the real SMTP server in, the
outbox listener and sender out to a recording relay):

- a display name that decodes to a line break cannot break the reply's headers, and does
  not stop the conversation's replies;
- a reply comes from the inbox's address the customer wrote to."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import aiosmtplib
import httpx
import pytest
from sqlalchemy import insert

from frontdesk.channels.email.headers import verify_message_id
from frontdesk.channels.email.models import EmailParticipant
from frontdesk.channels.email.service import receive_email, thread_secret
from frontdesk.channels.email.smtp_server import SmtpServer
from frontdesk.db.base import utcnow
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail, new_message_id
from tests.factories import Factory, Workspace, unique
from tests.integration.email.smtp_tools import (
    Captured,
    RecordingRelay,
    replies_recorded,
    running_smtp_server,
)
from tests.integration.email.test_smtp_loop import (
    customer,
    delivery_of,
    send,
    stored_messages,
    wait_for_outbound,
)

_LINE_BREAKS = "\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@pytest.fixture
async def smtp(runtime: Runtime) -> AsyncIterator[SmtpServer]:
    async with running_smtp_server(runtime) as server:
        yield server


@pytest.fixture
def relay(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> RecordingRelay:
    with replies_recorded(runtime, monkeypatch) as recording:
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


# --- several addresses: replies from the one the customer wrote to ----------------------------


async def test_mail_to_a_secondary_address_is_answered_from_it(
        smtp: SmtpServer, factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
        relay: RecordingRelay) -> None:
    ws = await factory.workspace()
    domain = f"{unique('acme').lower()}.example.com"
    primary, sales = f"support@{domain}", f"sales@{unique('shop').lower()}.example.org"
    r = await api.post("/api/v1/inboxes", headers=ws.admin.headers,
                       json={"name": "Support", "channel": "email", "email": primary,
                             "addresses": [sales], "from_name": "ACME Support",
                             "signature": "ACME Inc."})
    assert r.status_code == 201, r.text
    inbox_id = r.json()["id"]
    buyer, user = customer(), customer()
    first_id = new_message_id()
    await send(smtp, make_mail(sender=buyer, to=sales, subject="A quote",
                               message_id=first_id), buyer, [sales])
    await send(smtp, make_mail(sender=user, to=primary, subject="Broken"), user, [primary])
    conversations = (await api.get("/api/v1/conversations", headers=ws.admin.headers)).json()
    by_subject = {c["subject"]: c for c in conversations["items"]}
    assert {c["inbox_id"] for c in by_subject.values()} == {inbox_id}
    conversation_id = by_subject["A quote"]["id"]
    r = await api.get(f"/api/v1/conversations/{conversation_id}/messages",
                      headers=ws.admin.headers)
    first = (await api.get(f"/api/v1/messages/{r.json()['items'][0]['id']}/email",
                           headers=ws.admin.headers)).json()
    assert first["support_address"] == sales

    captured = await reply(api, runtime, relay, ws, conversation_id, buyer, "Here it is.")
    mail = captured.message
    assert captured.mail_from == sales
    assert mail["From"] == f"ACME Support <{sales}>"
    assert mail["Reply-To"].endswith(f"@{sales.rpartition('@')[2]}>")
    assert verify_message_id(mail["Message-ID"], thread_secret(runtime.settings)) \
        == conversation_id
    assert mail["Message-ID"].endswith(f"@{sales.rpartition('@')[2]}>")
    plain = mail.get_body(("plain",))
    assert plain is not None and "-- \nACME Inc." in plain.get_content().replace("\r\n", "\n")
    # The customer answers to the reply address: the same conversation.
    reply_to = mail["Reply-To"].addresses[0].addr_spec
    await send(smtp, make_mail(sender=buyer, to=reply_to, subject="Re: A quote",
                               body="Thanks", in_reply_to=mail["Message-ID"]),
               buyer, [reply_to])
    r = await api.get(f"/api/v1/conversations/{conversation_id}/messages",
                      headers=ws.admin.headers)
    assert r.json()["items"][-1]["content"] == "Thanks"

    # The other conversation was written to the primary address: answered from it.
    captured = await reply(api, runtime, relay, ws, by_subject["Broken"]["id"], user, "Fixed.")
    assert (captured.mail_from, captured.message["From"]) == (
        primary, f"ACME Support <{primary}>")

    # Once the inbox no longer receives at `sales`, replies fall back to the primary.
    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                        json={"addresses": [primary]})
    assert r.status_code == 200, r.text
    captured = await reply(api, runtime, relay, ws, conversation_id, buyer, "One more.")
    assert captured.mail_from == primary
    # And the SMTP server refuses mail for it, as for any address no inbox owns.
    with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
        await send(smtp, make_mail(sender=buyer, to=sales), buyer, [sales])
    assert refused.value.code == 550


async def test_fetched_mail_is_answered_from_the_address_its_headers_name(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
        relay: RecordingRelay) -> None:
    """IMAP has no envelope: Delivered-To, else To and Cc, say which address it was for."""
    ws = await factory.workspace()
    inbox_id, primary = await factory.email_inbox(ws)
    billing = f"billing@{unique('acme').lower()}.example.com"
    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                        json={"addresses": [primary, billing]})
    assert r.status_code == 200, r.text
    sender = customer()
    received = await receive_email(
        runtime, make_mail(sender=sender, to=f"Billing <{billing.upper()}>"),
        inbox_id=inbox_id, envelope_recipients=(), source="imap")
    assert received.conversation_id is not None
    captured = await reply(api, runtime, relay, ws, received.conversation_id, sender, "Paid.")
    assert captured.mail_from == billing
