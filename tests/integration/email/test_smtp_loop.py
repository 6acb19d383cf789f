"""The e-mail loop end to end, in-process on both databases: a real SMTP client talks to
the real SMTP server; the agent's reply leaves through the outbox listener and the sender
to a recording relay (aiosmtpd), whose received headers are asserted; the customer's
answer threads back; a bounce marks the reply failed."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy import select

from frontdesk.channels.email.headers import verify_message_id
from frontdesk.channels.email.models import OutboundEmail
from frontdesk.channels.email.service import thread_secret
from frontdesk.channels.email.smtp_server import SmtpServer
from frontdesk.conversations.models import Message
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail, new_message_id
from tests.factories import Factory, Workspace, unique
from tests.integration.email.smtp_tools import Captured, RecordingRelay, running_smtp_server
from tests.processes import free_port

SIZE_LIMIT = 200_000


@pytest.fixture
async def smtp(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SmtpServer]:
    monkeypatch.setattr(runtime.settings, "email_max_message_bytes", SIZE_LIMIT)
    async with running_smtp_server(runtime) as server:
        yield server


def customer() -> str:
    return f"{unique('customer')}@customer.example"


async def send(server: SmtpServer, raw: bytes, sender: str, recipients: list[str]) -> Any:
    """One SMTP transaction, command by command ("" is the null sender of bounces)."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False,
                             timeout=30)
    async with client:
        await client.ehlo()
        await client.mail(sender)
        for recipient in recipients:
            await client.rcpt(recipient)
        return await client.data(raw)


async def stored_messages(api: httpx.AsyncClient, ws: Workspace) -> list[dict[str, Any]]:
    r = await api.get("/api/v1/conversations", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = []
    for conversation in r.json()["items"]:
        m = await api.get(f"/api/v1/conversations/{conversation['id']}/messages",
                          headers=ws.admin.headers)
        items.extend(m.json()["items"])
    return items


async def test_the_server_refuses_unknown_addresses_and_oversize_mail(
        smtp: SmtpServer, factory: Factory, api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender = customer()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.port, start_tls=False, timeout=30)
    async with client:
        await client.ehlo()
        assert client.supports_extension("size")
        assert int(client.esmtp_extensions["size"]) == SIZE_LIMIT
        # Over-size is refused at MAIL FROM, before a byte of the mail is sent.
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await client.mail(sender, options=[f"SIZE={SIZE_LIMIT + 1}"])
        assert refused.value.code == 552
        await client.rset()
        await client.mail(sender)
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as unknown:
            await client.rcpt(f"nobody-{unique('x')}@nowhere.example")
        assert unknown.value.code == 550
        await client.rcpt(address.upper())  # addresses are matched case-insensitively
        code, _ = await client.data(make_mail(sender=sender, to=address, subject="Over SMTP"))
        assert code == 250
    [message] = await stored_messages(api, ws)
    assert message["content"].startswith("Hello, I need help")


async def test_connections_past_the_limit_are_told_to_come_back_later(
        runtime: Runtime) -> None:
    server = SmtpServer(runtime, "127.0.0.1", free_port(), max_sessions=1)
    await server.start()
    try:
        first = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False,
                                timeout=10)
        async with first:
            second = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port,
                                     start_tls=False, timeout=10)
            with pytest.raises(aiosmtplib.SMTPConnectResponseError) as busy:
                await second.connect()
            assert busy.value.code == 421
        # Once the first session ended, there is room again.
        for _ in range(50):
            if not server.active_sessions:
                break
            await asyncio.sleep(0.02)
        third = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False,
                                timeout=10)
        async with third:
            assert (await third.noop()).code == 250
    finally:
        await server.stop()


async def test_a_mail_to_two_inboxes_is_stored_in_each_once(
        smtp: SmtpServer, factory: Factory, api: httpx.AsyncClient) -> None:
    ws, other = await factory.workspace(), await factory.workspace()
    _, sales = await factory.email_inbox(ws)
    _, billing = await factory.email_inbox(other)
    sender = customer()
    raw = make_mail(sender=sender, to=f"{sales}, {billing}")
    await send(smtp, raw, sender, [sales, billing, sales.upper()])
    assert len(await stored_messages(api, ws)) == 1
    assert len(await stored_messages(api, other)) == 1


async def test_a_failure_to_store_answers_451_and_the_retry_stores_once(
        smtp: SmtpServer, factory: Factory, api: httpx.AsyncClient, runtime: Runtime) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender = customer()
    raw = make_mail(sender=sender, to=address, subject="Disk trouble")
    # A real failure: a directory where the raw mail's file must go, so writing it fails.
    # (SMTP carries lines ending in CRLF: the server stores what it received.)
    sha = hashlib.sha256(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")).hexdigest()
    blocker = runtime.settings.data_dir / "mail" / sha[:2] / sha
    blocker.mkdir(parents=True)
    try:
        with pytest.raises(aiosmtplib.SMTPDataError) as failed:
            await send(smtp, raw, sender, [address])
        assert failed.value.code == 451
        assert await stored_messages(api, ws) == []
    finally:
        blocker.rmdir()
    await send(smtp, raw, sender, [address])
    await send(smtp, raw, sender, [address])  # the MTA delivers twice: stored once
    assert len(await stored_messages(api, ws)) == 1


async def wait_for_outbound(runtime: Runtime, message_id: int) -> None:
    """Until the dispatcher's listener queued the reply (it runs in the app)."""
    for _ in range(400):
        async with runtime.read_sessions() as session:
            if await session.scalar(select(OutboundEmail.id)
                                    .where(OutboundEmail.message_id == message_id)):
                return
        await asyncio.sleep(0.025)
    raise AssertionError(f"message {message_id} was never queued for sending")


async def sent_to(runtime: Runtime, relay: RecordingRelay, recipient: str) -> Captured:
    """Send what is due (the session's database may hold other tests' pending mail too)
    and return the one mail the relay received for `recipient`."""
    for _ in range(20):
        if not await runtime.email_sender.send_due():
            break
    mails = [m for m in relay.received if recipient in m.rcpt_tos]
    assert len(mails) == 1, [m.rcpt_tos for m in relay.received]
    return mails[0]


async def delivery_of(runtime: Runtime, message_id: int) -> tuple[str, str | None, str | None]:
    async with runtime.read_sessions() as session:
        row = (await session.execute(select(Message.delivery_status, Message.delivery_error,
                                            Message.external_id)
                                     .where(Message.id == message_id))).one()
    return row.delivery_status, row.delivery_error, row.external_id


async def test_reply_goes_out_threaded_and_the_answer_comes_back(
        smtp: SmtpServer, factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws, from_name="ACME Support",
                                           signature="ACME Inc.\nhttps://acme.example")
    sender, colleague = customer(), customer()
    first_id = new_message_id()
    await send(smtp, make_mail(sender=f"Ann Lee <{sender}>", to=address, cc=[colleague],
                               subject="Broken widget", message_id=first_id),
               sender, [address])
    [incoming] = await stored_messages(api, ws)
    conversation_id = incoming["conversation_id"]

    with RecordingRelay() as relay:
        monkeypatch.setattr(runtime.settings, "smtp_relay_host", "127.0.0.1")
        monkeypatch.setattr(runtime.settings, "smtp_relay_port", relay.port)
        monkeypatch.setattr(runtime.settings, "smtp_relay_security", "none")
        r = await api.post(f"/api/v1/conversations/{conversation_id}/messages",
                           headers=ws.admin.headers,
                           json={"content": "We are on it.\nA new one ships today."})
        assert r.status_code == 201, r.text
        reply = r.json()
        assert reply["delivery_status"] == "pending"
        # A private note never leaves.
        r = await api.post(f"/api/v1/conversations/{conversation_id}/messages",
                           headers=ws.admin.headers, json={"content": "note", "private": True})
        assert r.status_code == 201
        await wait_for_outbound(runtime, reply["id"])
        captured = await sent_to(runtime, relay, sender)

    mail = captured.message
    assert sorted(captured.rcpt_tos) == sorted([sender, colleague])
    assert captured.mail_from == address
    assert mail["From"] == f"ACME Support <{address}>"
    assert mail["To"] == f"Ann Lee <{sender}>"
    assert mail["Cc"] == colleague
    assert mail["Subject"] == "Re: Broken widget"
    assert mail["In-Reply-To"] == first_id
    assert mail["References"] == first_id
    our_id = mail["Message-ID"]
    secret = thread_secret(runtime.settings)
    assert verify_message_id(our_id, secret) == conversation_id
    assert mail["Reply-To"].endswith(">") and f"+c{conversation_id}." in mail["Reply-To"]
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(("plain",))
    assert plain is not None
    text = plain.get_content().replace("\r\n", "\n")
    assert "We are on it." in text and "-- \nACME Inc." in text
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "A new one ships today." in html and "ACME Inc." in html
    status, _, external_id = await delivery_of(runtime, reply["id"])
    assert status == "sent" and f"<{external_id}>" == our_id

    # The customer answers our mail (In-Reply-To our Message-ID): the same conversation.
    await send(smtp, make_mail(sender=sender, to=address, subject="Re: Broken widget",
                               in_reply_to=our_id, references=[first_id, our_id],
                               body="Thanks!"), sender, [address])
    r = await api.get(f"/api/v1/conversations/{conversation_id}/messages",
                      headers=ws.admin.headers)
    assert [m["content"] for m in r.json()["items"]][-1] == "Thanks!"

    # A bounce of our reply joins the conversation and marks the reply failed.
    dsn = bounce_of(our_id, to=address, failed_recipient=colleague)
    await send(smtp, dsn, "", [address])
    status, error, _ = await delivery_of(runtime, reply["id"])
    assert status == "failed" and error is not None and colleague in error
    r = await api.get(f"/api/v1/conversations/{conversation_id}/messages",
                      headers=ws.admin.headers)
    last = r.json()["items"][-1]
    r = await api.get(f"/api/v1/messages/{last['id']}/email", headers=ws.admin.headers)
    assert r.json()["is_bounce"] is True and r.json()["automatic_kind"] == "bounce"

    # An old-style plain-text bounce from a bare MAILER-DAEMON joins the thread as well.
    plain = (f"From: MAILER-DAEMON\r\nTo: {address}\r\n"
             f"Subject: Undelivered Mail Returned to Sender\r\n"
             f"Message-ID: {new_message_id('relay.example')}\r\n\r\n"
             f"<{colleague}>: host said: 550 5.1.1 user unknown\r\n\r\n"
             f"--- Original message ---\r\nMessage-ID: {our_id}\r\n").encode()
    await send(smtp, plain, "", [address])
    r = await api.get(f"/api/v1/conversations/{conversation_id}/messages",
                      headers=ws.admin.headers)
    assert len(r.json()["items"]) == len(await stored_messages(api, ws))  # none elsewhere
    r = await api.get(f"/api/v1/messages/{r.json()['items'][-1]['id']}/email",
                      headers=ws.admin.headers)
    assert r.json()["is_bounce"] is True


async def test_an_unreachable_relay_is_retried_then_the_reply_fails(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime, smtp: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender = customer()
    await send(smtp, make_mail(sender=sender, to=address), sender, [address])
    [incoming] = await stored_messages(api, ws)
    monkeypatch.setattr(runtime.settings, "smtp_relay_host", "127.0.0.1")
    monkeypatch.setattr(runtime.settings, "smtp_relay_port", free_port())  # nobody there
    monkeypatch.setattr(runtime.settings, "smtp_relay_security", "none")
    monkeypatch.setattr(runtime.settings, "email_send_max_attempts", 2)
    monkeypatch.setattr(runtime.email_sender, "jitter", lambda ceiling: 0.0)
    r = await api.post(f"/api/v1/conversations/{incoming['conversation_id']}/messages",
                       headers=ws.admin.headers, json={"content": "Hello?"})
    reply_id = r.json()["id"]
    await wait_for_outbound(runtime, reply_id)
    assert await runtime.email_sender.send_due() >= 1  # (other tests' mail may be due too)
    status, _, _ = await delivery_of(runtime, reply_id)
    assert status == "pending"  # a temporary failure: tried again later
    with RecordingRelay() as relay:
        relay.answer = "554 5.7.1 Relay access denied"
        monkeypatch.setattr(runtime.settings, "smtp_relay_port", relay.port)
        assert await runtime.email_sender.send_due() >= 1
    status, error, _ = await delivery_of(runtime, reply_id)
    assert status == "failed" and error is not None and "554" in error


async def test_new_mail_is_acknowledged_once_per_sender_and_never_automatic_mail(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime, smtp: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(
        ws, auto_acknowledgement="We got your mail and answer within a day.")
    sender, colleague, robot = customer(), customer(), customer()
    first_id = new_message_id()
    with RecordingRelay() as relay:
        monkeypatch.setattr(runtime.settings, "smtp_relay_host", "127.0.0.1")
        monkeypatch.setattr(runtime.settings, "smtp_relay_port", relay.port)
        monkeypatch.setattr(runtime.settings, "smtp_relay_security", "none")
        await send(smtp, make_mail(sender=sender, to=address, cc=[colleague],
                                   subject="Where is my parcel", message_id=first_id),
                   sender, [address])
        # Within the interval the same sender gets no second acknowledgement; automatic
        # mail (an out-of-office, a newsletter) never gets one.
        await send(smtp, make_mail(sender=sender, to=address, subject="Another thing"),
                   sender, [address])
        await send(smtp, make_mail(sender=robot, to=address, subject="Out of office",
                                   headers={"Auto-Submitted": "auto-replied"}),
                   robot, [address])
        await send(smtp, make_mail(sender=robot, to=address, subject="News",
                                   headers={"Precedence": "bulk"}), robot, [address])
        messages = await stored_messages(api, ws)
        bots = [m for m in messages if m["sender_type"] == "bot"]
        assert len(bots) == 1 and len(messages) == 5
        ack = bots[0]
        assert ack["message_type"] == "outgoing" and ack["delivery_status"] == "pending"
        await wait_for_outbound(runtime, ack["id"])
        captured = await sent_to(runtime, relay, sender)
    mail = captured.message
    assert captured.rcpt_tos == [sender]  # never reply-all
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["In-Reply-To"] == first_id
    assert mail["Subject"] == "Re: Where is my parcel"
    plain = mail.get_body(("plain",))
    assert plain is not None and "answer within a day" in plain.get_content()
    status, _, _ = await delivery_of(runtime, ack["id"])
    assert status == "sent"


def bounce_of(message_id: str, *, to: str, failed_recipient: str) -> bytes:
    """A standard DSN (RFC 3464) reporting `message_id` undeliverable."""
    boundary = "dsn-boundary-1"
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@relay.example>\r\n"
        f"To: {to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {new_message_id('relay.example')}\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; '
        f'boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
        f"Your message could not be delivered.\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; relay.example\r\n\r\n"
        f"Final-Recipient: rfc822; {failed_recipient}\r\n"
        f"Action: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\nSubject: Re: Broken widget\r\n\r\n"
        f"--{boundary}--\r\n"
    ).encode()
