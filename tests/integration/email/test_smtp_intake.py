"""What intake does with the mail support desks actually get, through the real SMTP server
(and the recording relay for our answers), on both databases: replies threaded only by our
signed reply address, out-of-office answers to our replies, Cc'd colleagues and reply-all,
forwarded mail, the acknowledgement's once-per-interval rule, monitoring alerts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from frontdesk.channels.email.models import AutoAcknowledgement, EmailParticipant
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
    send,
    sent_to,
    stored_messages,
    wait_for_outbound,
)

CORPUS = Path(__file__).parents[2] / "data" / "mail"


@pytest.fixture
async def server(runtime: Runtime) -> AsyncIterator[SmtpServer]:
    async with running_smtp_server(runtime) as smtp:
        yield smtp


@pytest.fixture
def relay(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Any:
    with replies_recorded(runtime, monkeypatch) as recording:
        yield recording


def customer(name: str = "customer") -> str:
    return f"{unique(name)}@customer.example"


async def mail_in(server: SmtpServer, raw: bytes, sender: str, recipient: str) -> None:
    code, _ = await send(server, raw, sender, [recipient])
    assert code == 250


async def conversation_of(api: httpx.AsyncClient, ws: Workspace, message_id: int) -> int:
    r = await api.get(f"/api/v1/messages/{message_id}/email", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return int(r.json()["conversation_id"])


async def messages_by_subject(api: httpx.AsyncClient, ws: Workspace) -> dict[str, dict[str, Any]]:
    """The workspace's customer mails by the subject of their e-mail record."""
    found = {}
    for message in await stored_messages(api, ws):
        if message["message_type"] != "incoming":
            continue
        r = await api.get(f"/api/v1/messages/{message['id']}/email", headers=ws.admin.headers)
        found[r.json()["subject"]] = {**message, "email": r.json()}
    return found


async def agent_reply(api: httpx.AsyncClient, runtime: Runtime, relay: RecordingRelay,
                      ws: Workspace, conversation_id: int, to: str,
                      **body: Any) -> Captured:
    r = await api.post(f"/api/v1/conversations/{conversation_id}/messages",
                       headers=ws.admin.headers, json={"content": "We are on it.", **body})
    assert r.status_code == 201, r.text
    await wait_for_outbound(runtime, r.json()["id"])
    return await sent_to(runtime, relay, to)


async def bot_messages(api: httpx.AsyncClient, ws: Workspace) -> list[dict[str, Any]]:
    return [m for m in await stored_messages(api, ws) if m["sender_type"] == "bot"]


async def test_a_reply_threads_by_our_signed_reply_address_alone_and_a_forged_one_does_not(
        server: SmtpServer, relay: RecordingRelay, factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender, stranger = customer(), customer("stranger")
    await mail_in(server, make_mail(sender=sender, to=address, subject="Broken widget"),
                  sender, address)
    [first] = await stored_messages(api, ws)
    conversation_id = first["conversation_id"]
    ours = (await agent_reply(api, runtime, relay, ws, conversation_id, sender)).message
    [(_, reply_address)] = getaddresses([ours["Reply-To"]])
    assert reply_address != address and reply_address.startswith(address.split("@")[0] + "+")

    # The customer's client kept nothing but the address: no In-Reply-To, no References,
    # a new subject without a token.
    await mail_in(server, make_mail(sender=sender, to=reply_address, subject="One more thing",
                                    body="Also the lid is cracked."), sender, reply_address)
    # A token of ours with its signature altered, and one without any, name nothing.
    local, _, domain = reply_address.partition("@")
    forged = f"{local[:-4]}{'0000' if not local.endswith('0000') else '1111'}@{domain}"
    unsigned = f"{address.split('@')[0]}+c{conversation_id}@{domain}"
    await mail_in(server, make_mail(sender=sender, to=forged, subject="Forged token"),
                  sender, forged)
    await mail_in(server, make_mail(sender=sender, to=unsigned, subject="Unsigned token"),
                  sender, unsigned)
    # A stranger who learned the genuine address gets a conversation of their own.
    await mail_in(server, make_mail(sender=stranger, to=reply_address, subject="Intruder"),
                  stranger, reply_address)

    mails = await messages_by_subject(api, ws)
    assert mails["One more thing"]["conversation_id"] == conversation_id
    for subject in ("Forged token", "Unsigned token", "Intruder"):
        assert mails[subject]["conversation_id"] != conversation_id, subject
    assert len({mails[s]["conversation_id"] for s in ("Forged token", "Unsigned token",
                                                      "Intruder")}) == 3
    assert mails["Intruder"]["email"]["thread_note"] == "not_a_participant"
    assert mails["Forged token"]["email"]["thread_note"] is None


async def test_an_out_of_office_answer_to_our_reply_joins_it_is_automatic_and_unanswered(
        server: SmtpServer, relay: RecordingRelay, factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(
        ws, auto_acknowledgement="We got your mail and answer within a day.")
    sender, colleague, unknown = customer(), customer("colleague"), customer("unknown")
    await mail_in(server, make_mail(sender=sender, to=address, cc=[colleague],
                                    subject="Broken widget"), sender, address)
    [first] = [m for m in await stored_messages(api, ws) if m["sender_type"] == "contact"]
    conversation_id = first["conversation_id"]
    assert len(await bot_messages(api, ws)) == 1  # the acknowledgement of the first mail
    await sent_to(runtime, relay, sender)
    relay.received.clear()
    ours = (await agent_reply(api, runtime, relay, ws, conversation_id, sender)).message
    [(_, reply_address)] = getaddresses([ours["Reply-To"]])
    relay.received.clear()
    # Not the interval: only their being automatic must keep these unanswered.
    async with runtime.sessions() as session, session.begin():
        await session.execute(update(AutoAcknowledgement)
                              .where(AutoAcknowledgement.address.in_([sender, colleague,
                                                                      unknown]))
                              .values(sent_at=utcnow() - timedelta(days=365)))

    # Exchange: to our Reply-To, the RFC 3834 header, no thread headers at all.
    await mail_in(server, make_mail(
        sender=sender, to=reply_address, subject="Automatic reply: Re: Broken widget",
        body="I am out of the office until Monday.",
        headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}),
        sender, reply_address)
    # A client that says so in the subject only, answering our Message-ID.
    await mail_in(server, make_mail(
        sender=colleague, to=address, subject="Out of Office: Re: Broken widget",
        in_reply_to=ours["Message-ID"], body="Back on the 22nd."), colleague, address)
    # And one that names no conversation: it opens one, and is not answered either.
    await mail_in(server, make_mail(
        sender=unknown, to=address, subject="Abwesenheitsnotiz: Ihre Anfrage",
        body="Ich bin nicht im Büro."), unknown, address)

    mails = await messages_by_subject(api, ws)
    for subject in ("Automatic reply: Re: Broken widget", "Out of Office: Re: Broken widget"):
        assert mails[subject]["conversation_id"] == conversation_id, subject
        assert mails[subject]["email"]["automatic_kind"] == "auto-replied", subject
    elsewhere = mails["Abwesenheitsnotiz: Ihre Anfrage"]
    assert elsewhere["conversation_id"] != conversation_id
    assert elsewhere["email"]["automatic_kind"] == "auto-replied"
    assert len(await bot_messages(api, ws)) == 1  # still only the first acknowledgement
    for _ in range(20):
        if not await runtime.email_sender.send_due():
            break
    assert not [m for m in relay.received if {sender, colleague, unknown} & set(m.rcpt_tos)]


async def test_cc_participants_get_the_agents_reply_all_and_not_a_reply_to_the_sender(
        server: SmtpServer, relay: RecordingRelay, factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender, bob, carol = customer("ann"), customer("bob"), customer("carol")
    # The support address itself appears in Cc as well (upper case, plus-addressed): it is
    # never a participant.
    plus = address.replace("@", "+sales@").upper()
    await mail_in(server, make_mail(sender=f"Ann Lee <{sender}>",
                                    to=f"{address}, Bob Stone <{bob}>",
                                    cc=[f"Carol Diaz <{carol}>", plus],
                                    subject="Team order"), sender, address)
    [first] = await stored_messages(api, ws)
    conversation_id = first["conversation_id"]
    async with runtime.read_sessions() as session:
        participants = set((await session.execute(
            select(EmailParticipant.address)
            .where(EmailParticipant.conversation_id == conversation_id))).scalars())
    assert participants == {sender, bob, carol}

    everyone = await agent_reply(api, runtime, relay, ws, conversation_id, sender)
    assert sorted(everyone.rcpt_tos) == sorted([sender, bob, carol])
    mail = everyone.message
    assert getaddresses([mail["To"]]) == [("Ann Lee", sender)]
    assert sorted(getaddresses([mail["Cc"]])) == sorted([("Bob Stone", bob),
                                                         ("Carol Diaz", carol)])
    relay.received.clear()
    alone = await agent_reply(api, runtime, relay, ws, conversation_id, sender,
                              reply_all=False)
    assert alone.rcpt_tos == [sender] and alone.message["Cc"] is None


@pytest.mark.parametrize("item", ["forwarded_inline_gmail", "forwarded_as_attachment"])
async def test_a_forwarded_mail_opens_a_conversation_of_the_forwarder_and_keeps_the_original(
        item: str, server: SmtpServer, factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    forwarder = customer("jane")
    # The corpus mails (Gmail inline, Outlook as an attachment), to this inbox and from a
    # fresh forwarder.
    raw = (CORPUS / f"{item}.eml").read_bytes() \
        .replace(b"support@acme.test", address.encode()) \
        .replace(b"<corpus@customer.test>", new_message_id().encode()) \
        .replace(b"jane@customer.test>\nTo:", f"{forwarder}>\nTo:".encode(), 1)
    assert forwarder.encode() in raw
    await mail_in(server, raw, forwarder, address)
    [message] = await stored_messages(api, ws)
    r = await api.get(f"/api/v1/conversations/{message['conversation_id']}",
                      headers=ws.admin.headers)
    r = await api.get(f"/api/v1/contacts/{r.json()['contact_id']}", headers=ws.admin.headers)
    assert r.json()["email"] == forwarder  # the forwarder's conversation, not the courier's
    r = await api.get(f"/api/v1/messages/{message['id']}/email", headers=ws.admin.headers)
    record = r.json()
    if item == "forwarded_inline_gmail":
        assert message["content"] == "FYI — this is what the courier told me."
        assert "We could not deliver your parcel." in record["quoted_text"]
        original = {"from": "Courier <noreply@courier.test>", "to": ["jane@customer.test"],
                    "cc": [], "subject": "Delivery failed",
                    "date": "Sun, Jan 14, 2024 at 9:00 AM"}
    else:
        assert "Please check the quote below" in message["content"]
        [attached] = message["attachments"]
        assert attached["content_type"] == "message/rfc822" and attached["stored"] is True
        original = {"from": "Vendor <sales@vendor.test>", "to": ["jane@customer.test"],
                    "cc": [], "subject": "Your quote",
                    "date": "Mon, 15 Jan 2024 10:30:00 +0100"}
    # Who originally wrote is kept for the agent, not made a participant: a reply-all
    # goes to the forwarder, never to the courier or the vendor.
    assert record["forwarded"] == [original]
    async with runtime.read_sessions() as session:
        participants = set((await session.execute(
            select(EmailParticipant.address)
            .where(EmailParticipant.conversation_id == message["conversation_id"]))).scalars())
    assert participants == {forwarder}


async def test_the_acknowledgement_goes_to_a_sender_once_per_interval_and_again_after_it(
        server: SmtpServer, relay: RecordingRelay, factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    inbox_id, address = await factory.email_inbox(
        ws, auto_acknowledgement="We got your mail and answer within a day.")
    sender, other = customer(), customer("other")

    async def acknowledged_conversations() -> list[int]:
        return sorted(m["conversation_id"] for m in await bot_messages(api, ws))

    await mail_in(server, make_mail(sender=sender, to=address, subject="First"),
                  sender, address)
    await mail_in(server, make_mail(sender=sender, to=address, subject="Second"),
                  sender, address)
    await mail_in(server, make_mail(sender=other, to=address, subject="Someone else"),
                  other, address)
    mails = await messages_by_subject(api, ws)
    assert len({m["conversation_id"] for m in mails.values()}) == 3  # three conversations
    assert await acknowledged_conversations() == sorted(
        [mails["First"]["conversation_id"], mails["Someone else"]["conversation_id"]])

    # The interval (FRONTDESK_EMAIL_AUTO_REPLY_INTERVAL_HOURS) passes for `sender`: moved
    # back in the stored time, as the clock would.
    interval = timedelta(hours=runtime.settings.email_auto_reply_interval_hours)
    async with runtime.sessions() as session, session.begin():
        moved = await session.execute(
            update(AutoAcknowledgement)
            .where(AutoAcknowledgement.inbox_id == inbox_id,
                   AutoAcknowledgement.address == sender)
            .values(sent_at=utcnow() - interval - timedelta(minutes=1)))
        assert moved.rowcount == 1  # type: ignore[attr-defined]
    await mail_in(server, make_mail(sender=sender, to=address, subject="Third"),
                  sender, address)
    await mail_in(server, make_mail(sender=sender, to=address, subject="Fourth"),
                  sender, address)
    mails = await messages_by_subject(api, ws)
    assert await acknowledged_conversations() == sorted(
        [mails[s]["conversation_id"] for s in ("First", "Someone else", "Third")])
    # And they leave through the relay: twice to `sender`, each to them alone.
    for _ in range(20):
        if not await runtime.email_sender.send_due():
            break
    to_sender = [m for m in relay.received if sender in m.rcpt_tos]
    assert len(to_sender) == 2 and all(m.rcpt_tos == [sender] for m in to_sender)
    assert sorted(m.message["Subject"] for m in to_sender) == ["Re: First", "Re: Third"]


async def test_a_monitoring_alert_opens_a_conversation_but_is_never_acknowledged(
        server: SmtpServer, relay: RecordingRelay, factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(
        ws, auto_acknowledgement="We got your mail and answer within a day.")
    nagios, zabbix = customer("nagios"), customer("zabbix")
    await mail_in(server, make_mail(
        sender=f"Nagios <{nagios}>", to=address, subject="** PROBLEM Service Alert: "
        "web01/HTTP is CRITICAL **", body="Notification Type: PROBLEM\nState: CRITICAL\n",
        headers={"Auto-Submitted": "auto-generated", "X-Nagios-Notification-Type": "PROBLEM"}),
        nagios, address)
    await mail_in(server, make_mail(
        sender=f"Zabbix <{zabbix}>", to=address, subject="Problem: High CPU on db02",
        body="Severity: High\nOperational data: 97 %\n",
        headers={"Auto-Submitted": "auto-generated"}), zabbix, address)
    mails = await messages_by_subject(api, ws)
    assert len(mails) == 2 and len({m["conversation_id"] for m in mails.values()}) == 2
    for mail in mails.values():
        assert mail["email"]["automatic_kind"] == "auto-generated"
    assert "State: CRITICAL" in mails[
        "** PROBLEM Service Alert: web01/HTTP is CRITICAL **"]["content"]
    assert await bot_messages(api, ws) == []
    r = await api.get("/api/v1/conversations", headers=ws.admin.headers)
    assert {c["status"] for c in r.json()["items"]} == {"open"}
