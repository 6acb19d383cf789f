"""automatic.classify: which mail came from a machine, and of which kind."""

from __future__ import annotations

import pytest

from frontdesk.channels.email import parse_email


def _parse(
    headers: str, subject: str = "Question", sender: str = "jane@customer.test"
) -> str | None:
    raw = f"From: {sender}\nSubject: {subject}\n{headers}\n\nBody\n".encode()
    return parse_email(raw).automatic_kind


@pytest.mark.parametrize(("headers", "kind"), [
    ("Auto-Submitted: auto-replied", "auto-replied"),
    ("Auto-Submitted: auto-generated", "auto-generated"),
    ("Auto-Submitted: auto-notified", "auto-generated"),
    ("Auto-Submitted: no", None),
    ("X-Autoreply: yes", "auto-replied"),
    ("X-Autorespond: yes", "auto-replied"),
    ("Precedence: bulk", "bulk"),
    ("Precedence: junk", "bulk"),
    ("Precedence: list", "list"),
    ("List-Id: <users.lists.test>", "list"),
    ("List-Unsubscribe: <https://shop.test/u>", "bulk"),
    ("X-Auto-Response-Suppress: All", None),
    ("X-Auto-Response-Suppress: OOF, AutoReply", None),
    ("Auto-Submitted: auto-generated\nPrecedence: bulk", "auto-generated"),
])
def test_automatic_mail_is_recognised_by_its_headers(headers: str, kind: str | None) -> None:
    assert _parse(headers) == kind


def test_x_auto_response_suppress_alone_is_a_request_not_a_machine() -> None:
    raw = b"From: a@customer.test\nSubject: Invoice\nX-Auto-Response-Suppress: All\n\nHi\n"
    parsed = parse_email(raw)
    assert not parsed.is_automatic
    assert parsed.suppress_auto_reply and not parsed.should_auto_reply


@pytest.mark.parametrize("subject", [
    "Automatic reply: Your ticket", "Out of Office: Your ticket", "Out of Office AutoReply: x",
    "Abwesenheitsnotiz: Ihre Anfrage", "Automatische Antwort: Ihre Anfrage",
    "Réponse automatique : Votre demande", "Автоматический ответ: Ваш заказ",
    "Автоответ: Re: заказ", "自动回复: 订单问题", "自動回覆：訂單", "رد تلقائي: طلبك",
    "I am out of the office until January 22",
])
def test_out_of_office_subjects_are_auto_replies(subject: str) -> None:
    assert _parse("", subject=subject) == "auto-replied"


@pytest.mark.parametrize("subject", [
    "Automatic reply not working", "Re: out of office hours support",
    "Absent member in my account", "Vacation booking refund",
])
def test_a_customer_writing_about_such_things_is_still_a_person(subject: str) -> None:
    assert _parse("", subject=subject) is None


def test_a_monitoring_alert_is_auto_generated_so_it_still_opens_conversations() -> None:
    assert _parse("Auto-Submitted: auto-generated", "PROBLEM: web01 is DOWN",
                  "nagios@monitor.test") == "auto-generated"


@pytest.mark.parametrize("sender", ["noreply@shop.test", "no-reply@shop.test",
                                    "do-not-reply@shop.test", "donotreply@shop.test"])
def test_a_no_reply_sender_is_auto_generated(sender: str) -> None:
    assert _parse("", sender=sender) == "auto-generated"
