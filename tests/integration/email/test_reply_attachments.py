"""An agent's reply with files, end to end on both databases: uploaded through the API,
named in the reply, queued by the dispatcher's listener and sent by the sender to a
recording relay (aiosmtpd), where each file arrives as a MIME attachment, byte for byte;
a reply to the sender only leaves the other participants out; a reply whose file is gone
fails with the reason rather than leaving without it."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from frontdesk.channels.email.service import receive_email
from frontdesk.channels.email.storage import attachment_store
from frontdesk.conversations.models import Message
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail
from tests.factories import Factory, unique
from tests.integration.email.smtp_tools import RecordingRelay
from tests.integration.email.test_smtp_loop import sent_to, wait_for_outbound

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40  # binary: must arrive unchanged
HTML_FILE = b"<html><body><p>price list</p></body></html>\n"


async def test_uploaded_files_reach_the_relay_as_mime_attachments(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender = f"{unique('customer')}@customer.example"
    colleague = f"{unique('colleague')}@customer.example"
    received = await receive_email(
        runtime, make_mail(sender=sender, to=address, cc=[colleague], subject="Quote"),
        inbox_id=None, envelope_recipients=[address], source="test")
    ids = []
    for name, data, kind in (("quote.pdf", PDF, "application/pdf"),
                             ("prices.html", HTML_FILE, "text/html")):
        r = await api.post("/api/v1/attachments", headers=ws.admin.headers,
                           files={"file": (name, data, kind)})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])

    with RecordingRelay() as relay:
        monkeypatch.setattr(runtime.settings, "smtp_relay_host", "127.0.0.1")
        monkeypatch.setattr(runtime.settings, "smtp_relay_port", relay.port)
        monkeypatch.setattr(runtime.settings, "smtp_relay_security", "none")
        r = await api.post(f"/api/v1/conversations/{received.conversation_id}/messages",
                           headers=ws.admin.headers,
                           json={"content": "The quote is attached.", "upload_ids": ids,
                                 "reply_all": False})
        assert r.status_code == 201, r.text
        reply = r.json()
        await wait_for_outbound(runtime, reply["id"])
        captured = await sent_to(runtime, relay, sender)

    assert captured.rcpt_tos == [sender]  # the sender only: no Cc
    mail = captured.message
    assert mail["Cc"] is None
    assert mail.get_content_type() == "multipart/mixed"
    body = mail.get_body(("plain",))
    assert body is not None and "The quote is attached." in body.get_content()
    parts = {part.get_filename(): part for part in mail.iter_attachments()}
    assert set(parts) == {"quote.pdf", "prices.html"}
    assert parts["quote.pdf"].get_content_type() == "application/pdf"
    assert parts["quote.pdf"].get_payload(decode=True) == PDF
    # An HTML file goes as bytes, never as a text part a client might render.
    assert parts["prices.html"].get_content_type() == "application/octet-stream"
    assert parts["prices.html"].get_payload(decode=True) == HTML_FILE
    assert parts["quote.pdf"].get_content_disposition() == "attachment"


async def test_a_reply_whose_file_is_gone_fails_with_the_reason_instead_of_going_without(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender = f"{unique('customer')}@customer.example"
    received = await receive_email(runtime, make_mail(sender=sender, to=address),
                                   inbox_id=None, envelope_recipients=[address], source="test")
    data = f"only this test has these bytes: {unique('file')}".encode()
    r = await api.post("/api/v1/attachments", headers=ws.admin.headers,
                       files={"file": ("gone.txt", data, "text/plain")})
    upload = r.json()
    attachment_store(runtime.settings.data_dir).path_of(
        hashlib.sha256(data).hexdigest()).unlink()  # e.g. a lost volume
    with RecordingRelay() as relay:
        monkeypatch.setattr(runtime.settings, "smtp_relay_host", "127.0.0.1")
        monkeypatch.setattr(runtime.settings, "smtp_relay_port", relay.port)
        monkeypatch.setattr(runtime.settings, "smtp_relay_security", "none")
        r = await api.post(f"/api/v1/conversations/{received.conversation_id}/messages",
                           headers=ws.admin.headers,
                           json={"content": "Attached.", "upload_ids": [upload["id"]]})
        reply_id = r.json()["id"]
        await wait_for_outbound(runtime, reply_id)
        for _ in range(20):
            if not await runtime.email_sender.send_due():
                break
        assert not [m for m in relay.received if sender in m.rcpt_tos]
    async with runtime.read_sessions() as session:
        message = await session.get(Message, reply_id)
    assert message is not None and message.delivery_status == "failed"
    assert message.delivery_error is not None and "gone.txt" in message.delivery_error
