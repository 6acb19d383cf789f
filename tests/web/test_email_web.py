"""E-mail in the agent's workspace over HTTP, on both backends: the conversation view of a
mail (addresses, folded history, the sandboxed HTML frame, attachments, flags), the
cookie-authenticated downloads and their headers, reply-all, and files attached to
replies (upload with CSRF, listed on the message, carried by the API channel's event)."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from sqlalchemy import select

from frontdesk.accounts.models import Role
from frontdesk.channels.email.models import EmailRecord
from frontdesk.channels.email.service import receive_email
from frontdesk.conversations.models import Message
from frontdesk.core.events import OutboxEvent
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail
from tests.factories import Factory, unique
from tests.integration.email.test_smtp_loop import bounce_of, wait_for_outbound
from tests.web.test_web_http import MakeClient, browser_client, signed_in

__all__ = ["browser_client"]  # the fixture, shared with test_web_http

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00"
       b"\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05"
       b"\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
EVIL_HTML = b"<html><body><script>alert(document.cookie)</script>report</body></html>"
EVIL_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
            b"<script>alert(2)</script></svg>")
MAIL_POLICY = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
QUOTED_BODY = ("Thanks, the new one works.\n\n"
               "On Mon, 2 Nov 2026 at 10:00, Support <support@example.com> wrote:\n"
               "> We shipped a replacement today.\n> Kind regards\n")


def customer() -> str:
    return f"{unique('customer')}@customer.example"


async def a_mail(runtime: Runtime, address: str, **mail: object) -> tuple[int, int]:
    """Deliver one mail to `address`; returns (conversation id, message id)."""
    raw = make_mail(to=address, **mail)  # type: ignore[arg-type]
    received = await receive_email(runtime, raw, inbox_id=None,
                                   envelope_recipients=[address], source="test")
    assert received.status == "stored", received
    assert received.conversation_id and received.message_id
    return received.conversation_id, received.message_id


async def test_a_mail_shows_its_addresses_folded_history_frame_and_attachments(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender, colleague = customer(), customer()
    conversation_id, message_id = await a_mail(
        runtime, address, sender=f"Ann Lee <{sender}>", cc=[colleague], subject="Widget <b>",
        body=QUOTED_BODY,
        html='<p>Thanks, the new one works.</p><img src="cid:logo@x" alt="logo">'
             '<script>alert(1)</script><blockquote>We shipped</blockquote>',
        inline_images=[("logo@x", "image/png", PNG)],
        attachments=[("report.html", "text/html", EVIL_HTML),
                     ("drawing.svg", "image/svg+xml", EVIL_SVG)])
    agent = await factory.member(ws, Role.AGENT)
    client, _ = await signed_in(browser_client, agent)

    page = (await client.get(f"/app/conversations/{conversation_id}")).text
    assert re.search(r"class=\"conv-subject\"><bdi>Widget &lt;b&gt;</bdi>", page)  # the head
    assert f"Ann Lee &lt;{sender}&gt;" in page and colleague in page and address in page
    assert "Thanks, the new one works." in page
    # The history is there, folded behind its toggle, not in the shown text.
    fold = re.search(r'<details class="mail-quote">\s*<summary>Show quoted text</summary>'
                     r'\s*<pre[^>]*>(.*?)</pre>', page, re.S)
    assert fold and "We shipped a replacement today." in fold.group(1)
    frame = re.search(r"<iframe ([^>]*)>", page)
    assert frame, page
    assert 'sandbox=""' in frame.group(1)
    assert f'src="/app/messages/{message_id}/email/html"' in frame.group(1)
    assert f'href="/app/messages/{message_id}/email/source"' in page  # View original
    for n, name in ((2, "report.html"), (3, "drawing.svg")):
        assert f'href="/app/messages/{message_id}/attachments/{n}" download' in page
        assert name in page

    html = await client.get(f"/app/messages/{message_id}/email/html")
    assert html.status_code == 200
    assert html.headers["content-security-policy"] == MAIL_POLICY
    # Sandboxed by the header itself, not only by our <iframe sandbox>: the URL opened in a
    # tab of its own runs nothing and has no origin to act as.
    directives = [d.strip() for d in html.headers["content-security-policy"].split(";")]
    assert "sandbox" in directives
    assert html.headers["x-content-type-options"] == "nosniff"
    assert html.headers["content-type"].startswith("text/html")
    assert "<script" not in html.text.lower() and "Thanks, the new one works." in html.text
    # cid: became the picture itself (a data: URL: the sandboxed frame sends no cookie).
    found = re.search(r'<img [^>]*src="([^"]+)"', html.text)
    assert found and found.group(1) == "data:image/png;base64," + base64.b64encode(PNG).decode()
    # The inline route answers a picture as itself.
    picture = await client.get(f"/app/messages/{message_id}/attachments/1?inline=true")
    assert picture.headers["content-type"] == "image/png" and picture.content == PNG
    assert picture.headers["content-disposition"].startswith("inline")

    for n, payload in ((2, EVIL_HTML), (3, EVIL_SVG)):
        for query in ("", "?inline=true"):
            r = await client.get(f"/app/messages/{message_id}/attachments/{n}{query}")
            assert r.status_code == 200 and r.content == payload
            assert r.headers["content-type"] == "application/octet-stream"
            assert r.headers["content-disposition"].startswith("attachment")
            assert r.headers["x-content-type-options"] == "nosniff"
            assert "sandbox" in r.headers["content-security-policy"]
    source = await client.get(f"/app/messages/{message_id}/email/source")
    assert source.headers["content-disposition"].startswith("attachment")
    assert source.headers["content-type"] == "application/octet-stream"
    assert b"We shipped a replacement today." in source.content

    # Another workspace's agent: every one of these is a 404, never the file.
    theirs = await factory.workspace()
    stranger, _ = await signed_in(browser_client, theirs.admin)
    for path in (f"/app/messages/{message_id}/email/html",
                 f"/app/messages/{message_id}/email/source",
                 f"/app/messages/{message_id}/attachments/1?inline=true",
                 f"/app/messages/{message_id}/attachments/2"):
        r = await stranger.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert EVIL_HTML not in r.content and EVIL_SVG not in r.content and PNG not in r.content
    # Signed out: no file either.
    assert (await browser_client().get(f"/app/messages/{message_id}/attachments/2")
            ).status_code in (303, 401)


async def test_automatic_mail_strangers_and_bounced_replies_are_flagged(
    browser_client: MakeClient, factory: Factory, runtime: Runtime, api: httpx.AsyncClient,
) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender, colleague = customer(), customer()
    conversation_id, _ = await a_mail(runtime, address, sender=sender, cc=[colleague],
                                      subject="Order 7")
    await a_mail(runtime, address, sender=sender, subject="Out of office",
                 headers={"Auto-Submitted": "auto-replied"}, body="I am away.")
    stranger_conversation, _ = await a_mail(
        runtime, address, sender=customer(), subject=f"Re: Order 7 [#{conversation_id}]",
        body="Let me read along.")
    assert stranger_conversation != conversation_id
    r = await api.post(f"/api/v1/conversations/{conversation_id}/messages",
                       headers=ws.admin.headers, json={"content": "On its way."})
    reply_id = r.json()["id"]
    await wait_for_outbound(runtime, reply_id)
    async with runtime.read_sessions() as session:
        our_id = await session.scalar(select(Message.external_id).where(Message.id == reply_id))
    await receive_email(runtime, bounce_of(f"<{our_id}>", to=address, failed_recipient=colleague),
                        inbox_id=None, envelope_recipients=[address], source="test")
    client, _ = await signed_in(browser_client, ws.admin)

    page = (await client.get(f"/app/conversations/{conversation_id}")).text
    reply = page[page.index(f'id="msg-{reply_id}"'):]
    reply = reply[:reply.index('<div class="msg ')] if '<div class="msg ' in reply else reply
    assert "delivery-failed" in reply and "Not delivered" in reply
    assert re.search(r'class="delivery-error"[^>]*>[^<]*' + re.escape(colleague), reply)
    assert "Bounce: a mail could not be delivered" in page
    listed = (await api.get("/api/v1/conversations", headers=ws.admin.headers)).json()["items"]
    away = next(c["id"] for c in listed if c["subject"] == "Out of office")
    assert "Automatic mail: no automatic answer is sent to it" in (
        await client.get(f"/app/conversations/{away}")).text
    assert "Not a participant:" in (
        await client.get(f"/app/conversations/{stranger_conversation}")).text


async def test_the_composer_offers_reply_all_and_sends_attached_files(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender, colleague = customer(), customer()
    conversation_id, _ = await a_mail(runtime, address, sender=f"Ann <{sender}>",
                                      cc=[colleague], subject="Invoice")
    agent = await factory.member(ws, Role.AGENT)
    client, token = await signed_in(browser_client, agent)
    page = (await client.get(f"/app/conversations/{conversation_id}")).text
    recipients = page[page.index('class="mail-recipients'):]
    assert sender in recipients and colleague in recipients
    assert 'name="recipients" value="all" checked' in recipients
    assert 'name="recipients" value="sender"' in recipients

    files = {"file": ("../../etc/pass\u200bwd.pdf", b"%PDF-1.4 invoice", "application/pdf")}
    assert (await client.post("/app/attachments", files=files)).status_code == 403  # no CSRF
    r = await client.post("/app/attachments", files=files, headers={"X-CSRF-Token": token})
    assert r.status_code == 201, r.text
    assert "passwd.pdf" in r.text and "../" not in r.text
    upload_id = re.search(r'name="upload_ids" value="([^"]+)"', r.text)
    assert upload_id

    r = await client.post(f"/app/conversations/{conversation_id}/reply", data={
        "content": "Here is the invoice.", "recipients": "sender",
        "upload_ids": upload_id.group(1), "csrf_token": token})
    assert r.status_code == 200, r.text
    async with runtime.read_sessions() as session:
        message = (await session.execute(select(Message).where(
            Message.conversation_id == conversation_id, Message.content == "Here is the invoice.")
        )).scalar_one()
    assert [(a["filename"], a["size"], a["content_type"]) for a in message.attachments] == [
        ("passwd.pdf", 16, "application/pdf")]
    assert f'href="/app/messages/{message.id}/attachments/1" download' in r.text
    download = await client.get(f"/app/messages/{message.id}/attachments/1")
    assert download.content == b"%PDF-1.4 invoice"
    await wait_for_outbound(runtime, message.id)
    async with runtime.read_sessions() as session:
        record = await session.get(EmailRecord, message.id)
    assert record is not None and record.cc_addresses == []  # to the sender only
    assert record.to_addresses == [f"Ann <{sender}>"]

    r = await client.post(f"/app/conversations/{conversation_id}/reply", data={
        "content": "And to all of you.", "recipients": "all", "csrf_token": token})
    assert r.status_code == 200
    async with runtime.read_sessions() as session:
        all_id = await session.scalar(select(Message.id).where(
            Message.conversation_id == conversation_id, Message.content == "And to all of you."))
    assert all_id is not None
    await wait_for_outbound(runtime, all_id)
    async with runtime.read_sessions() as session:
        record = await session.get(EmailRecord, all_id)
    assert record is not None and record.cc_addresses == [colleague]

    # An upload id of another workspace is refused, and nothing is sent.
    theirs = await factory.workspace()
    stranger, their_token = await signed_in(browser_client, theirs.admin)
    their_conversation = await factory.conversation(theirs)
    r = await stranger.post(
        f"/app/conversations/{their_conversation['conversation_id']}/reply",
        data={"content": "smuggled", "upload_ids": upload_id.group(1),
              "csrf_token": their_token})
    assert r.status_code == 422
    # And my conversation's reply route is a 404 for them.
    r = await stranger.post(f"/app/conversations/{conversation_id}/reply",
                            data={"content": "hi", "csrf_token": their_token})
    assert r.status_code == 404


async def test_api_uploads_go_with_replies_and_the_event_carries_their_urls(
    factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
) -> None:
    ws, theirs = await factory.workspace(), await factory.workspace()
    conversation = await factory.conversation(ws)
    cid = conversation["conversation_id"]
    r = await api.post("/api/v1/attachments", headers=ws.admin.headers,
                       files={"file": ("notes.txt", b"step 1\nstep 2\n", "text/plain")})
    assert r.status_code == 201, r.text
    upload = r.json()
    assert upload["filename"] == "notes.txt" and upload["size"] == 14

    r = await api.post(f"/api/v1/conversations/{cid}/messages", headers=theirs.admin.headers,
                       json={"content": "x", "upload_ids": [upload["id"]]})
    assert r.status_code == 404  # not their conversation
    their_conversation = await factory.conversation(theirs)
    r = await api.post(f"/api/v1/conversations/{their_conversation['conversation_id']}/messages",
                       headers=theirs.admin.headers,
                       json={"content": "x", "upload_ids": [upload["id"]]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_upload"
    forged = upload["id"][:-2] + ("AA" if not upload["id"].endswith("AA") else "BB")
    r = await api.post(f"/api/v1/conversations/{cid}/messages", headers=ws.admin.headers,
                       json={"content": "x", "upload_ids": [forged]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_upload"

    r = await api.post(f"/api/v1/conversations/{cid}/messages", headers=ws.admin.headers,
                       json={"content": "The steps", "upload_ids": [upload["id"]]})
    assert r.status_code == 201, r.text
    message = r.json()
    [listed] = message["attachments"]
    assert listed["url"] == f"/api/v1/messages/{message['id']}/attachments/1"
    async with runtime.read_sessions() as session:
        payloads = [e.payload for e in (await session.execute(select(OutboxEvent).where(
            OutboxEvent.workspace_id == ws.id, OutboxEvent.type == "message.created")
        )).scalars() if e.payload["message"]["id"] == message["id"]]
    assert payloads[0]["message"]["attachments"][0]["url"] == listed["url"]
    r = await api.get(listed["url"], headers=ws.admin.headers)
    assert r.content == b"step 1\nstep 2\n"
    assert r.headers["content-disposition"].startswith("attachment")
    assert (await api.get(listed["url"], headers=theirs.admin.headers)).status_code == 404


async def test_an_upload_over_the_limit_or_empty_is_refused(
    factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = await factory.workspace()
    monkeypatch.setattr(runtime.settings, "email_max_attachment_bytes", 1000)
    r = await api.post("/api/v1/attachments", headers=ws.admin.headers,
                       files={"file": ("big.bin", b"x" * 1001, "application/octet-stream")})
    assert r.status_code == 413 and r.json()["error"]["code"] == "upload_too_large"
    r = await api.post("/api/v1/attachments", headers=ws.admin.headers,
                       files={"file": ("empty.bin", b"", "application/octet-stream")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_upload"
    r = await api.post("/api/v1/attachments", headers=ws.admin.headers,
                       data={"workspace_id": "1"}, files={"file": ("a.txt", b"a", "text/plain")})
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["error"]["details"]] == ["body.workspace_id"]
    r = await api.post("/api/v1/attachments", headers=ws.admin.headers, json={"file": "x"})
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["error"]["details"]] == ["body.file"]
    r = await api.post("/api/v1/attachments",
                       files={"file": ("a.txt", b"a", "text/plain")})
    assert r.status_code == 401
