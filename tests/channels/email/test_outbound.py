"""Outbound mail pieces: the reply subject, header-injection refusal, and the listener's
idempotency (the dispatcher delivers events at least once)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from frontdesk.channels.email.models import Direction, EmailRecord, OutboundEmail
from frontdesk.channels.email.outbound import build_mail, reply_subject
from frontdesk.channels.email.service import receive_email
from frontdesk.core.dispatcher import DispatchedEvent
from frontdesk.core.events import OutboxEvent
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail
from tests.factories import Factory, unique
from tests.integration.email.test_smtp_loop import wait_for_outbound


@pytest.mark.parametrize(("subject", "expected"), [
    ("Broken widget", "Re: Broken widget"),
    ("Re: Broken widget", "Re: Broken widget"),
    ("AW: Kaputt", "AW: Kaputt"),
    ("  folded\r\n subject  ", "Re: folded subject"),
    ("", "Re: your message"),
    (None, "Re: your message"),
])
def test_reply_subject(subject: str | None, expected: str) -> None:
    assert reply_subject(subject) == expected


def record(**changes: object) -> EmailRecord:
    values: dict[str, object] = dict(
        message_id=1, workspace_id=1, inbox_id=1, conversation_id=1,
        direction=Direction.OUTBOUND.value, header_message_id="fd.1.abc@example.com",
        subject="Re: Hello", from_address="support@example.com", from_name="Support",
        to_addresses=["Ann <ann@customer.example>"], cc_addresses=[], in_reply_to=None,
        reference_ids=[], text="", quoted_text="", defects=[], source="agent")
    values.update(changes)
    return EmailRecord(**values)


@pytest.mark.parametrize("changes", [
    {"subject": "Hello\r\nBcc: victim@example.com"},
    {"subject": "Hello\nBcc: victim@example.com"},
    {"to_addresses": ["ann@customer.example\r\nBcc: victim@example.com"]},
    {"in_reply_to": "x@y\r\nBcc: victim@example.com"},
])
def test_a_header_value_with_a_line_break_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="line break"):
        build_mail(record(**changes), "Hello", {"from_name": "Support"},
                   "support+c1.x@example.com")
    with pytest.raises(ValueError, match="line break"):
        build_mail(record(), "Hello", {"from_name": "Support\r\nBcc: victim@example.com"},
                   "support+c1.x@example.com")


def test_a_mail_is_built_with_its_thread_headers() -> None:
    mail = build_mail(record(in_reply_to="a@customer.example",
                             reference_ids=["a@customer.example"]),
                      "Line one\nLine <two>", {"from_name": "Support", "signature": "ACME"},
                      "support+c1.x@example.com")
    assert mail["In-Reply-To"] == "<a@customer.example>"
    assert mail["Message-ID"] == "<fd.1.abc@example.com>"
    html = mail.get_body(("html",))
    assert html is not None and "Line &lt;two&gt;" in html.get_content()


async def test_an_event_dispatched_twice_queues_one_mail(
        factory: Factory, runtime: Runtime, api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender = f"{unique('c')}@customer.example"
    received = await receive_email(runtime, make_mail(sender=sender, to=address),
                                   inbox_id=None, envelope_recipients=[address], source="test")
    r = await api.post(f"/api/v1/conversations/{received.conversation_id}/messages",
                       headers=ws.admin.headers, json={"content": "Hello"})
    reply_id = r.json()["id"]
    await wait_for_outbound(runtime, reply_id)
    async with runtime.sessions() as session, session.begin():
        events = [
            DispatchedEvent(e.id, e.workspace_id, e.type, e.payload, e.created_at)
            for e in (await session.execute(
                select(OutboxEvent).where(OutboxEvent.workspace_id == ws.id,
                                          OutboxEvent.type == "message.created"))).scalars()
            if e.payload["message"]["id"] == reply_id
        ]
        assert len(events) == 1
        await runtime.email_listener.handle(session, events)  # a second delivery
    async with runtime.read_sessions() as session:
        queued = await session.scalar(select(func.count()).select_from(OutboundEmail)
                                      .where(OutboundEmail.message_id == reply_id))
        records = await session.scalar(select(func.count()).select_from(EmailRecord)
                                       .where(EmailRecord.message_id == reply_id))
    assert queued == 1 and records == 1
