"""forwards.inline_forwards, and parse_email's `forwarded`: who wrote a forwarded mail, from
the header block mail clients write under their forward separator or an attached mail."""

from __future__ import annotations

import pytest

from frontdesk.channels.email import parse_email
from frontdesk.channels.email.forwards import inline_forwards


@pytest.mark.parametrize(("text", "expected"), [
    # Gmail
    ("FYI\n\n---------- Forwarded message ---------\nFrom: Courier <noreply@courier.test>\n"
     "Date: Sun, Jan 14, 2024 at 9:00 AM\nSubject: Delivery failed\nTo: <jane@c.test>\n\n"
     "We could not deliver.\n",
     [{"from": "Courier <noreply@courier.test>", "date": "Sun, Jan 14, 2024 at 9:00 AM",
       "subject": "Delivery failed", "to": "<jane@c.test>"}]),
    # Apple Mail: a blank line under the separator, names in bold
    ("See below\n\nBegin forwarded message:\n\n*From:* Shop <orders@shop.test>\n"
     "*Subject:* Your order\n*Date:* 1 January 2024 at 10:00:00 GMT\n*To:* a@c.test\n"
     "*Cc:* b@c.test\n\nShipped.\n",
     [{"from": "Shop <orders@shop.test>", "subject": "Your order",
       "date": "1 January 2024 at 10:00:00 GMT", "to": "a@c.test", "cc": "b@c.test"}]),
    # Thunderbird, in Russian, inside a quote
    ("> -------- Пересылаемое сообщение --------\n> Тема: Счёт\n> Дата: 01.02.2024\n"
     "> От: Бухгалтерия <buh@firm.test>\n> Кому: anna@c.test\n>\n> Текст\n",
     [{"subject": "Счёт", "date": "01.02.2024", "from": "Бухгалтерия <buh@firm.test>",
       "to": "anna@c.test"}]),
    # Two forwards in one mail
    ("---------- Forwarded message ---------\nFrom: a@x.test\n\none\n\n"
     "---------- Forwarded message ---------\nFrom: b@y.test\n\ntwo\n",
     [{"from": "a@x.test"}, {"from": "b@y.test"}]),
])
def test_the_header_block_under_a_forward_separator_is_read(
        text: str, expected: list[dict[str, str]]) -> None:
    assert inline_forwards(text) == expected


@pytest.mark.parametrize("text", [
    # A reply's history is not a forward.
    "Thanks\n\n-----Original Message-----\nFrom: Support <s@acme.test>\nSent: Monday\n\nHi\n",
    # A separator without a From line under it names nobody.
    "---------- Forwarded message ---------\nThe courier said no.\n",
    # Text that merely talks about forwarding.
    "Begin forwarded message: see the attachment\nFrom: me\n",
])
def test_what_is_not_a_forward_names_nobody(text: str) -> None:
    assert inline_forwards(text) == []


def test_a_forwarded_mail_keeps_who_wrote_it_readable() -> None:
    raw = ("From: jane@c.test\nTo: support@acme.test\nSubject: Fwd: Заказ\n"
           "Content-Type: text/plain; charset=utf-8\n\nЧто скажете?\n\n"
           "---------- Forwarded message ---------\nFrom: Анна Петрова <anna@shop.test>\n"
           "To: Jane <jane@c.test>, Bob <bob@c.test>\nSubject: Заказ 42\n\nГотово.\n").encode()
    [forwarded] = parse_email(raw).forwarded
    assert forwarded.as_json() == {
        "from": "Анна Петрова <anna@shop.test>", "to": ["Jane <jane@c.test>",
                                                       "Bob <bob@c.test>"],
        "cc": [], "subject": "Заказ 42", "date": ""}
