"""receive_email on both databases: inboxes, threading, duplicates, quarantine, files."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from frontdesk.accounts.models import Role
from frontdesk.channels.email.headers import make_message_id
from frontdesk.channels.email.models import EmailParticipant
from frontdesk.channels.email.service import (
    NoInboxForRecipients,
    ReceivedEmail,
    receive_email,
    thread_secret,
)
from frontdesk.runtime import Runtime
from tests.apitools import assert_error
from tests.channels.email.mailmaker import make_mail, new_message_id
from tests.factories import Factory, Workspace, unique


def customer() -> str:
    return f"{unique('customer')}@customer.example"


async def messages_of(api: httpx.AsyncClient, ws: Workspace, conversation_id: int) -> list[dict]:
    r = await api.get(f"/api/v1/conversations/{conversation_id}/messages",
                      headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_an_email_inbox_claims_its_address_once(factory: Factory,
                                                      api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    other = await factory.workspace()
    inbox_id, address = await factory.email_inbox(ws, from_name="ACME Help", signature="-- ACME")
    r = await api.get(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers)
    assert r.json()["channel"] == "email"
    assert r.json()["settings"] == {"email": address.lower(), "from_name": "ACME Help",
                                    "signature": "-- ACME", "auto_acknowledgement": ""}
    # Another inbox, even in another workspace, cannot take the address (any case).
    r = await api.post("/api/v1/inboxes", headers=other.admin.headers,
                       json={"name": "x", "channel": "email", "email": address.upper()})
    assert_error(r, 409, "email_address_taken")
    r = await api.post("/api/v1/inboxes", headers=ws.admin.headers,
                       json={"name": "x", "channel": "email"})
    assert_error(r, 422)
    r = await api.post("/api/v1/inboxes", headers=ws.admin.headers,
                       json={"name": "x", "channel": "api", "email": customer()})
    assert_error(r, 422)
    r = await api.post("/api/v1/inboxes", headers=ws.admin.headers,
                       json={"name": "x", "channel": "email", "email": "not an address"})
    assert_error(r, 422, "invalid_email")
    r = await api.post("/api/v1/inboxes", headers=ws.admin.headers,
                       json={"name": "x", "channel": "email", "email": "a@b.example",
                             "from_name": "Evil\r\nBcc: x@y.example"})
    assert_error(r, 422)


async def test_a_mail_opens_a_conversation_and_a_repeat_stores_nothing(
        factory: Factory, runtime: Runtime, api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    inbox_id, address = await factory.email_inbox(ws)
    sender = customer()
    raw = make_mail(sender=f"Анна Петрова <{sender}>", to=address, subject="Заказ 42",
                    body="Где мой заказ?\n\nOn Mon, Bob wrote:\n> old text\n> more old",
                    html="<p>Где мой заказ?</p><script>alert(1)</script>")
    first = await receive_email(runtime, raw, inbox_id=None, envelope_recipients=[address],
                                source="test")
    assert first.status == "stored" and first.inbox_id == inbox_id
    again = await receive_email(runtime, raw, inbox_id=None,
                                envelope_recipients=[address.upper()], source="test")
    assert again.status == "duplicate" and again.message_id == first.message_id
    assert first.conversation_id is not None
    r = await api.get(f"/api/v1/conversations/{first.conversation_id}", headers=ws.admin.headers)
    assert r.json()["subject"] == "Заказ 42"
    [message] = await messages_of(api, ws, first.conversation_id)
    assert "Где мой заказ?" in message["content"]
    assert "<script" not in (message["content_html"] or "")
    r = await api.get(f"/api/v1/contacts/{first.contact_id}", headers=ws.admin.headers)
    assert r.json()["email"] == sender and r.json()["name"] == "Анна Петрова"
    r = await api.get(f"/api/v1/messages/{first.message_id}/email", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["subject"] == "Заказ 42" and record["from_address"] == sender
    assert record["direction"] == "inbound" and record["automatic_kind"] is None
    r = await api.get(f"/api/v1/messages/{first.message_id}/email/source",
                      headers=ws.admin.headers)
    assert r.status_code == 200 and r.content == raw
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("attachment")


async def test_replies_thread_and_strangers_do_not(
        factory: Factory, runtime: Runtime, api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender, colleague, stranger = customer(), customer(), customer()
    first_id = new_message_id()
    first = await receive_email(
        runtime, make_mail(sender=sender, to=address, cc=[colleague], message_id=first_id),
        inbox_id=None, envelope_recipients=[address], source="test")
    # The customer's reply to their own mail joins it.
    reply = await receive_email(
        runtime, make_mail(sender=sender, to=address, subject="Re: Help please",
                           in_reply_to=first_id, references=[first_id]),
        inbox_id=None, envelope_recipients=[address], source="test")
    assert reply.conversation_id == first.conversation_id
    # So does the colleague in Cc (a participant).
    cc_reply = await receive_email(
        runtime, make_mail(sender=colleague, to=address, in_reply_to=first_id),
        inbox_id=None, envelope_recipients=[address], source="test")
    assert cc_reply.conversation_id == first.conversation_id
    # A stranger referring to the thread opens a conversation of their own, flagged.
    intruder = await receive_email(
        runtime, make_mail(sender=stranger, to=address, in_reply_to=first_id,
                           subject=f"Re: Help please [#{first.conversation_id}]"),
        inbox_id=None, envelope_recipients=[address], source="test")
    assert intruder.conversation_id != first.conversation_id
    r = await api.get(f"/api/v1/messages/{intruder.message_id}/email", headers=ws.admin.headers)
    assert r.json()["thread_note"] == "not_a_participant"
    # A forged Message-ID of ours (a wrong MAC) names nothing.
    assert first.conversation_id is not None
    genuine = make_message_id("example.com", first.conversation_id,
                              thread_secret(runtime.settings))
    forged = genuine[:-len("@example.com>") - 4] + "aaaa@example.com>"
    forged_reply = await receive_email(
        runtime, make_mail(sender=stranger, to=address, in_reply_to=forged),
        inbox_id=None, envelope_recipients=[address], source="test")
    assert forged_reply.conversation_id not in (first.conversation_id, intruder.conversation_id)
    # A new mail without references opens a new conversation, even from a known sender.
    fresh = await receive_email(runtime, make_mail(sender=sender, to=address), inbox_id=None,
                                envelope_recipients=[address], source="test")
    assert fresh.conversation_id != first.conversation_id
    # The signed Message-ID and the subject token thread a participant's mail.
    by_mid = await receive_email(
        runtime, make_mail(sender=sender, to=address, references=[genuine]),
        inbox_id=None, envelope_recipients=[address], source="test")
    assert by_mid.conversation_id == first.conversation_id
    by_subject = await receive_email(
        runtime, make_mail(sender=colleague, to=address,
                           subject=f"Re: [#{first.conversation_id}] Help please"),
        inbox_id=None, envelope_recipients=[address], source="test")
    assert by_subject.conversation_id == first.conversation_id
    async with runtime.read_sessions() as session:
        participants = set((await session.execute(
            select(EmailParticipant.address)
            .where(EmailParticipant.conversation_id == first.conversation_id))).scalars())
    assert participants == {sender, colleague}  # never our own address


async def test_mail_for_nobody_and_mail_of_another_inbox(
        factory: Factory, runtime: Runtime) -> None:
    with pytest.raises(NoInboxForRecipients):
        await receive_email(runtime, make_mail(sender=customer(), to="nobody@nowhere.example"),
                            inbox_id=None, envelope_recipients=["nobody@nowhere.example"],
                            source="test")
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    _, other_address = await factory.email_inbox(ws)
    sender = customer()
    first_id = new_message_id()
    first = await receive_email(runtime, make_mail(sender=sender, to=address,
                                                   message_id=first_id),
                                inbox_id=None, envelope_recipients=[address], source="test")
    # A reply that reaches another inbox never joins the first inbox's conversation.
    elsewhere = await receive_email(
        runtime, make_mail(sender=sender, to=other_address, in_reply_to=first_id),
        inbox_id=None, envelope_recipients=[other_address], source="test")
    assert elsewhere.conversation_id != first.conversation_id
    # Plus-addressing routes to the plain address's inbox.
    plus = await receive_email(runtime, make_mail(sender=sender, to=address),
                               inbox_id=None,
                               envelope_recipients=[address.replace("@", "+c1.abc@")],
                               source="test")
    assert plus.inbox_id == first.inbox_id


async def test_quarantine_lists_and_reprocesses(
        factory: Factory, runtime: Runtime, api: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = await factory.workspace()
    other = await factory.workspace()
    inbox_id, address = await factory.email_inbox(ws)
    broken = await receive_email(runtime, b"\r\n\r\n", inbox_id=inbox_id,
                                 envelope_recipients=[address], source="test")
    assert broken.status == "quarantined" and broken.reason
    anonymous = await receive_email(runtime, b"Subject: who am I\r\n\r\nno sender",
                                    inbox_id=inbox_id, envelope_recipients=[address],
                                    source="test")
    assert anonymous.status == "quarantined"
    # A storm: past the limit, mail is kept in quarantine, not lost.
    monkeypatch.setattr(runtime.settings, "email_rate_limit_count", 2)
    sender = customer()
    results = [await receive_email(runtime, make_mail(sender=sender, to=address, body=f"#{n}"),
                                   inbox_id=None, envelope_recipients=[address], source="test")
               for n in range(3)]
    assert [r.status for r in results] == ["stored", "stored", "quarantined"]
    monkeypatch.undo()

    r = await api.get("/api/v1/email/quarantine", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    listed = {row["id"]: row for row in r.json()}
    assert set(listed) == {broken.quarantine_id, anonymous.quarantine_id,
                           results[2].quarantine_id}
    assert listed[results[2].quarantine_id]["reason_code"] == "rate_limited"
    assert listed[anonymous.quarantine_id]["reason_code"] == "no_sender"
    # Admins only; another workspace's id is a 404.
    agent = await factory.member(ws, Role.AGENT)
    r = await api.get("/api/v1/email/quarantine", headers=agent.headers)
    assert_error(r, 403)
    r = await api.post(f"/api/v1/email/quarantine/{broken.quarantine_id}/reprocess",
                       headers=other.admin.headers)
    assert_error(r, 404)
    r = await api.get(f"/api/v1/email/quarantine/{broken.quarantine_id}/raw",
                      headers=ws.admin.headers)
    assert r.status_code == 200 and r.content == b"\r\n\r\n"
    # Re-processing: still broken stays listed; the rate-limited one is stored at last.
    r = await api.post(f"/api/v1/email/quarantine/{broken.quarantine_id}/reprocess",
                       headers=ws.admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "quarantined", r.text
    r = await api.post(f"/api/v1/email/quarantine/{results[2].quarantine_id}/reprocess",
                       headers=ws.admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "stored", r.text
    r = await api.post(f"/api/v1/email/quarantine/{results[2].quarantine_id}/reprocess",
                       headers=ws.admin.headers)
    assert_error(r, 409, "already_reprocessed")
    r = await api.get("/api/v1/email/quarantine", headers=ws.admin.headers)
    assert {row["id"] for row in r.json()} == {broken.quarantine_id, anonymous.quarantine_id}


async def test_attachments_are_downloads_and_inline_images_show(
        factory: Factory, runtime: Runtime, api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    other = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    raw = make_mail(
        sender=customer(), to=address, html='<p>See <img src="cid:logo@x"></p>',
        inline_images=[("logo@x", "image/png", png)],
        attachments=[("../../etc/passwd.html", "text/html", b"<script>alert(1)</script>"),
                     ("drawing.svg", "image/svg+xml", b"<svg onload='alert(1)'/>")],
    )
    stored = await receive_email(runtime, raw, inbox_id=None, envelope_recipients=[address],
                                 source="test")
    r = await api.get(f"/api/v1/conversations/{stored.conversation_id}/messages",
                      headers=ws.admin.headers)
    [message] = r.json()["items"]
    names = [a["filename"] for a in message["attachments"]]
    assert "passwd.html" in names and "drawing.svg" in names
    assert 'data-cid="logo@x"' in message["content_html"]
    by_name = {a["filename"]: n for n, a in enumerate(message["attachments"], start=1)}
    base = f"/api/v1/messages/{stored.message_id}/attachments"
    for name in ("passwd.html", "drawing.svg"):
        for query in ("", "?inline=true"):
            r = await api.get(f"{base}/{by_name[name]}{query}", headers=ws.admin.headers)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/octet-stream"
            assert r.headers["content-disposition"].startswith("attachment;")
            assert r.headers["x-content-type-options"] == "nosniff"
    logo = next(n for n, a in enumerate(message["attachments"], start=1)
                if a["content_id"] == "logo@x")
    r = await api.get(f"{base}/{logo}?inline=true", headers=ws.admin.headers)
    assert r.status_code == 200 and r.content == png
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"].startswith("inline;")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert_error(await api.get(f"{base}/{logo}", headers=other.admin.headers), 404)
    assert_error(await api.get(f"{base}/99", headers=ws.admin.headers), 404)


async def test_an_attachment_over_the_limit_is_listed_but_not_kept(
        factory: Factory, runtime: Runtime, api: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    monkeypatch.setattr(runtime.settings, "email_max_attachment_bytes", 1000)
    raw = make_mail(sender=customer(), to=address,
                    attachments=[("small.txt", "text/plain", b"x" * 10),
                                 ("big.bin", "application/octet-stream", b"y" * 5000)])
    stored = await receive_email(runtime, raw, inbox_id=None, envelope_recipients=[address],
                                 source="test")
    assert stored.status == "stored"
    r = await api.get(f"/api/v1/conversations/{stored.conversation_id}/messages",
                      headers=ws.admin.headers)
    [message] = r.json()["items"]
    listed = {a["filename"]: a for a in message["attachments"]}
    assert listed["small.txt"]["stored"] is True
    assert listed["big.bin"]["stored"] is False and listed["big.bin"]["size"] == 5000
    base = f"/api/v1/messages/{stored.message_id}/attachments"
    numbers = {a["filename"]: n for n, a in enumerate(message["attachments"], start=1)}
    r = await api.get(f"{base}/{numbers['small.txt']}", headers=ws.admin.headers)
    assert r.status_code == 200 and r.content == b"x" * 10
    assert_error(await api.get(f"{base}/{numbers['big.bin']}", headers=ws.admin.headers),
                 404, "attachment_not_stored")
    r = await api.get(f"/api/v1/messages/{stored.message_id}/email", headers=ws.admin.headers)
    assert any("big.bin" in defect for defect in r.json()["defects"])


async def test_mail_arriving_together_is_threaded_and_stored_once(
        factory: Factory, runtime: Runtime) -> None:
    """Concurrent mail shares writer batches (EmailIntake.together): replies still find
    their conversations, a repeat within the batch is stored once, one sender's mails and
    mails answering each other fall back to one by one."""

    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    senders = [customer() for _ in range(8)]
    firsts = [new_message_id() for _ in senders]

    async def receive(raw: bytes) -> ReceivedEmail:
        return await receive_email(runtime, raw, inbox_id=None,
                                   envelope_recipients=[address], source="test")

    opened = await asyncio.gather(*(
        receive(make_mail(sender=s, to=address, message_id=m))
        for s, m in zip(senders, firsts, strict=True)))
    conversations = [r.conversation_id for r in opened]
    assert len(set(conversations)) == len(senders)
    repeat = make_mail(sender=senders[0], to=address, in_reply_to=firsts[0])
    chained_id = new_message_id()
    results = await asyncio.gather(
        *(receive(make_mail(sender=s, to=address, in_reply_to=m))
          for s, m in zip(senders[1:], firsts[1:], strict=True)),
        receive(repeat), receive(repeat),
        receive(make_mail(sender=senders[1], to=address, message_id=chained_id)),
        receive(make_mail(sender=senders[2], to=address, in_reply_to=chained_id)),
    )
    replies = results[:len(senders) - 1]
    assert [r.conversation_id for r in replies] == conversations[1:]
    statuses = sorted(r.status for r in results[len(senders) - 1:len(senders) + 1])
    assert statuses == ["duplicate", "stored"]
    assert {r.status for r in results} <= {"stored", "duplicate"}


async def test_threads_follow_a_merge(factory: Factory, runtime: Runtime,
                                      api: httpx.AsyncClient) -> None:
    """After an agent merged two mail conversations of one customer, a reply to either
    joins the surviving one, also from a participant of the merged-away one."""
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender, colleague = customer(), customer()
    first_id, second_id = new_message_id(), new_message_id()
    first = await receive_email(runtime, make_mail(sender=sender, to=address,
                                                   message_id=first_id),
                                inbox_id=None, envelope_recipients=[address], source="test")
    second = await receive_email(runtime, make_mail(sender=sender, to=address, cc=[colleague],
                                                    message_id=second_id),
                                 inbox_id=None, envelope_recipients=[address], source="test")
    assert first.conversation_id != second.conversation_id
    r = await api.post(f"/api/v1/conversations/{first.conversation_id}/merge",
                       headers=ws.admin.headers, json={"other_id": second.conversation_id})
    assert r.status_code == 200, r.text
    reply = await receive_email(
        runtime, make_mail(sender=colleague, to=address, in_reply_to=second_id),
        inbox_id=None, envelope_recipients=[address], source="test")
    assert reply.conversation_id == first.conversation_id
    assert second.conversation_id is not None
    signed = make_message_id("example.com", second.conversation_id,
                             thread_secret(runtime.settings))
    by_signed = await receive_email(
        runtime, make_mail(sender=sender, to=address, references=[signed]),
        inbox_id=None, envelope_recipients=[address], source="test")
    assert by_signed.conversation_id == first.conversation_id
