# ruff: noqa: E501 - message lines are kept whole so each reads as it appears in the mail
"""Writes the e-mail corpus: NAME.eml (raw bytes) and NAME.expected.json (what parsing must
find) for every case below. The .eml files are committed; a test checks they still match
this script (`python tests/data/mail/make_corpus.py` rewrites them, `--check` compares).

The messages are built byte by byte on purpose: real charsets (koi8-r, gb2312, big5,
windows-1256...), wrong labels, broken MIME and evil names are exactly what a mail library
would "fix" if we let it write them. Everything is deterministic (no clock, no random).

Expected keys (all optional; tests/channels/email/test_corpus.py checks each one given):
subject, subject_contains, from ([name, address]), to, cc, reply_to (addresses),
cc_names, delivered_to, message_id,
message_id_synthesized, in_reply_to, references, date (ISO, UTC), text_contains,
text_not_contains, new_text (exact), new_text_contains, new_text_not_contains,
quoted_contains, html_contains, html_not_contains, html_is_none, attachments (file names
in order), attachment_types ({name: type}), inline_cids, not_loaded (names), is_calendar,
calendar_method, is_bounce, bounce_original_message_id, bounce_status, bounce_recipient,
bounce_standard, bounce_diagnostic_contains, automatic_kind (null: a person), suppress_auto_reply, defects (true:
some, false: none), defects_contain, list_id, charset_note (a defect mentioning it),
forwarded (who wrote the forwarded mails: [{from, to, cc, subject, date}]).
Not an expectation but a setting: max_attachment_bytes (the limit the message is parsed
with, FRONTDESK_EMAIL_MAX_ATTACHMENT_BYTES; default the parser's own).
"""

from __future__ import annotations

import base64
import json
import quopri
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUPPORT = "Acme Support <support@acme.test>"
CUSTOMER = "Jane Customer <jane@customer.test>"
DATE = "Mon, 15 Jan 2024 10:30:00 +0100"
DATE_ISO = "2024-01-15T09:30:00+00:00"

Case = tuple[bytes, dict[str, Any]]
CASES: dict[str, Callable[[], Case]] = {}


def case(fn: Callable[[], Case]) -> Callable[[], Case]:
    CASES[fn.__name__] = fn
    return fn


# --- building blocks ---------------------------------------------------------------------------


def ew(text: str, charset: str = "utf-8", enc: str = "B") -> str:
    """An RFC 2047 encoded word."""
    data = text.encode(charset)
    if enc == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    q = "".join(
        chr(b) if (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122) else
        "_" if b == 32 else f"={b:02X}" for b in data
    )
    return f"=?{charset}?Q?{q}?="


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data)


def qp(data: bytes) -> bytes:
    return quopri.encodestring(data)


def message(
    headers: list[tuple[str, str | bytes]], body: bytes, *, crlf: bool = False,
    defaults: bool = True, msgid: str | None = None,
) -> bytes:
    names = {n.lower() for n, _ in headers}
    head: list[tuple[str, str | bytes]] = []
    if defaults:
        if "from" not in names:
            head.append(("From", CUSTOMER))
        if "to" not in names:
            head.append(("To", SUPPORT))
        if "date" not in names:
            head.append(("Date", DATE))
        if "message-id" not in names:
            head.append(("Message-ID", f"<{msgid or 'corpus'}@customer.test>"))
    head.extend(headers)
    lines = []
    for name, value in head:
        v = value if isinstance(value, bytes) else value.encode("ascii")
        lines.append(name.encode("ascii") + b": " + v)
    out = b"\n".join(lines) + b"\n\n" + body
    if crlf:
        out = out.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return out


def part(
    body: bytes, ctype: str = "text/plain; charset=utf-8", cte: str | None = None,
    extra: list[str] | None = None,
) -> bytes:
    lines = [f"Content-Type: {ctype}"]
    if cte:
        lines.append(f"Content-Transfer-Encoding: {cte}")
    lines.extend(extra or [])
    return "\n".join(lines).encode() + b"\n\n" + body


def multipart(parts: list[bytes], boundary: str, *, close: bool = True) -> bytes:
    out = b"This is a multi-part message in MIME format.\n"
    for p in parts:
        out += f"\n--{boundary}\n".encode() + p.rstrip(b"\n") + b"\n"
    if close:
        out += f"--{boundary}--\n".encode()
    return out


def mime(ctype: str) -> list[tuple[str, str | bytes]]:
    return [("MIME-Version", "1.0"), ("Content-Type", ctype)]


def simple(
    text: str, charset: str, *, subject: str = "Order question", label: str | None = None,
    cte: str = "8bit", extra: list[tuple[str, str | bytes]] | None = None,
    msgid: str | None = None,
) -> bytes:
    data = text.encode(charset)
    body = b64(data) if cte == "base64" else qp(data) if cte == "quoted-printable" else data
    return message(
        [("Subject", subject), *mime(f"text/plain; charset={label or charset}"),
         ("Content-Transfer-Encoding", cte), *(extra or [])],
        body, msgid=msgid,
    )


# --- charsets ------------------------------------------------------------------------------------

RU = "Здравствуйте! Принтер снова не печатает, горит красная лампочка. Помогите, пожалуйста."
ZH = "您好！我上周订购的打印机还没有到货，订单号是12345。请帮我查一下物流信息，谢谢。"
ZH_TW = "您好！我上週訂購的印表機還沒有到貨，訂單號碼是12345。請幫我查詢物流資訊，謝謝。"
AR = "مرحبا، لم تصل الطابعة التي طلبتها الأسبوع الماضي. رقم الطلب 12345. شكرا لكم."
JA = "こんにちは。先週注文したプリンターがまだ届いていません。注文番号は12345です。"
FR = "Bonjour, ma commande n'est pas arrivée. Le numéro est 12345. Merci beaucoup, Hélène."
CS = "Dobrý den, tiskárna nefunguje. Objednávka číslo 12345. Děkuji, Jiří Žďárský."
DE = "Guten Tag, der Drucker druckt nicht mehr. Mit freundlichen Grüßen, Jürgen Müller."
KO = "안녕하세요. 지난주에 주문한 프린터가 아직 도착하지 않았습니다."


@case
def charset_utf8_plain() -> Case:
    raw = simple(RU + "\n", "utf-8", msgid="utf8")
    return raw, {"text_contains": ["Принтер снова не печатает"], "defects": False,
                 "new_text": RU, "automatic_kind": None}


@case
def charset_koi8r_russian() -> Case:
    raw = simple(RU + "\n", "koi8-r", subject=ew("Принтер не печатает", "koi8-r", "Q"))
    return raw, {"subject": "Принтер не печатает", "text_contains": ["горит красная лампочка"],
                 "defects": False}


@case
def charset_cp1251_russian_base64() -> Case:
    raw = simple(RU + "\n", "windows-1251", cte="base64",
                 subject=ew("Вопрос по заказу", "windows-1251"))
    return raw, {"subject": "Вопрос по заказу", "text_contains": ["Помогите, пожалуйста"],
                 "defects": False}


@case
def charset_gb2312_chinese() -> Case:
    raw = simple(ZH + "\n", "gb2312", subject=ew("订单还没有到", "gb2312"))
    return raw, {"subject": "订单还没有到", "text_contains": ["还没有到货", "物流信息"],
                 "defects": False}


@case
def charset_gb2312_label_on_gbk_text() -> Case:
    # 镕 and 喆 are not in GB2312 but are in GBK: senders label GBK text "gb2312".
    text = "您好，我是朱镕基公司的张喆，发票抬头有误。"
    raw = message([("Subject", "Invoice"), *mime("text/plain; charset=gb2312"),
                   ("Content-Transfer-Encoding", "8bit")], text.encode("gbk") + b"\n")
    return raw, {"text_contains": ["朱镕基", "张喆"], "defects": False}


@case
def charset_gb18030_chinese() -> Case:
    raw = simple(ZH + " 𠀀\n", "gb18030", cte="base64")
    return raw, {"text_contains": ["物流信息", "𠀀"], "defects": False}


@case
def charset_gbk_label() -> Case:
    # 镕, 喆 and 玥 are in GBK, not in GB2312; labelled as what they are.
    text = "您好，我是朱镕基公司的张喆，请联系王玥。发票抬头有误。"
    raw = message([("Subject", "Invoice"), *mime("text/plain; charset=gbk"),
                   ("Content-Transfer-Encoding", "8bit")], text.encode("gbk") + b"\n")
    return raw, {"text_contains": ["朱镕基", "张喆", "王玥"], "defects": False}


@case
def charset_gb18030_8bit_beyond_gb2312() -> Case:
    # GBK's two-byte characters (镕, 喆) and what only GB18030 has: four-byte ones (𠀀 of the
    # CJK extension B, ḿ) and the euro sign; 8-bit, labelled in capitals as Outlook does.
    text = "您好，朱镕基公司的张喆：发票金额 120€，附言 𠀀 ḿ。"
    raw = message([("Subject", ew("发票", "gb18030")), *mime("text/plain; charset=GB18030"),
                   ("Content-Transfer-Encoding", "8bit")], text.encode("gb18030") + b"\n")
    return raw, {"subject": "发票", "text_contains": ["朱镕基", "张喆", "120€", "𠀀 ḿ"],
                 "defects": False}


@case
def charset_big5_traditional_chinese() -> Case:
    raw = simple(ZH_TW + "\n", "big5", cte="quoted-printable", subject=ew("訂單查詢", "big5"))
    return raw, {"subject": "訂單查詢", "text_contains": ["印表機還沒有到貨"], "defects": False}


@case
def charset_windows1256_arabic() -> Case:
    raw = simple(AR + "\n", "windows-1256", subject=ew("استفسار عن الطلب", "windows-1256"))
    return raw, {"subject": "استفسار عن الطلب", "text_contains": ["لم تصل الطابعة"],
                 "defects": False}


@case
def charset_iso8859_1_french() -> Case:
    raw = simple(FR + "\n", "iso-8859-1", cte="quoted-printable",
                 subject=ew("Commande non reçue", "iso-8859-1", "Q"))
    return raw, {"subject": "Commande non reçue", "text_contains": ["arrivée", "Hélène"],
                 "defects": False}


@case
def charset_iso8859_2_czech() -> Case:
    raw = simple(CS + "\n", "iso-8859-2")
    return raw, {"text_contains": ["tiskárna", "Jiří Žďárský"], "defects": False}


@case
def charset_iso8859_15_euro() -> Case:
    raw = simple("Der Preis war 49,90 € statt 39,90 €. " + DE + "\n", "iso-8859-15")
    return raw, {"text_contains": ["49,90 €", "Grüßen"], "defects": False}


@case
def charset_shift_jis_japanese() -> Case:
    raw = simple(JA + "\n", "shift_jis", subject=ew("注文について", "shift_jis"))
    return raw, {"subject": "注文について", "text_contains": ["プリンターがまだ届いていません"],
                 "defects": False}


@case
def charset_euc_kr_korean() -> Case:
    raw = simple(KO + "\n", "euc-kr")
    return raw, {"text_contains": ["프린터가 아직 도착하지"], "defects": False}


@case
def mislabelled_ascii_really_utf8() -> Case:
    raw = simple("Hello, my name is Zoë Ångström and the café order is late.\n", "utf-8",
                 label="us-ascii")
    return raw, {"text_contains": ["Zoë Ångström", "café"], "defects": True,
                 "charset_note": "UTF-8"}


@case
def mislabelled_latin1_really_cp1251() -> Case:
    raw = simple(RU + "\n", "windows-1251", label="iso-8859-1")
    return raw, {"text_contains": ["Принтер снова не печатает"], "defects": True,
                 "charset_note": "cp1251"}


@case
def mislabelled_latin1_really_utf8() -> Case:
    raw = simple(FR + "\n", "utf-8", label="iso-8859-1", cte="quoted-printable")
    return raw, {"text_contains": ["arrivée", "Hélène"], "text_not_contains": ["Ã©"],
                 "defects": True}


@case
def mislabelled_utf8_really_cp1251() -> Case:
    raw = simple(RU + "\n", "windows-1251", label="utf-8")
    return raw, {"text_contains": ["Принтер снова не печатает"], "defects": True}


@case
def mislabelled_ascii_really_koi8r() -> Case:
    raw = simple(RU + "\n", "koi8-r", label="us-ascii")
    return raw, {"text_contains": ["Принтер снова не печатает"], "defects": True}


@case
def charset_unknown_label() -> Case:
    raw = simple("Übermorgen passt — danke!\n", "utf-8", label="x-unknown-charset")
    return raw, {"text_contains": ["Übermorgen passt — danke!"], "defects": True}


@case
def charset_missing_on_8bit_body() -> Case:
    raw = message([("Subject", "No charset"), *mime("text/plain"),
                   ("Content-Transfer-Encoding", "8bit")], "Grüße, Zoë — ok\n".encode())
    return raw, {"text_contains": ["Grüße, Zoë — ok"], "defects": True}


@case
def charset_html_meta_declares_koi8r() -> Case:
    html = f'<html><head><meta http-equiv="Content-Type" content="text/html; charset=koi8-r">' \
           f"</head><body><p>{RU}</p></body></html>"
    raw = message([("Subject", "HTML koi8"), *mime("text/html"),
                   ("Content-Transfer-Encoding", "8bit")], html.encode("koi8-r") + b"\n")
    return raw, {"text_contains": ["Принтер снова не печатает"],
                 "html_contains": ["Принтер снова не печатает"]}


# --- headers -------------------------------------------------------------------------------------


@case
def rfc2047_subject_and_names() -> Case:
    raw = message([
        ("From", f"{ew('Иван Петров')} <ivan@customer.test>"),
        ("To", f"{ew('Служба поддержки', 'koi8-r', 'Q')} <support@acme.test>"),
        ("Cc", f"{ew('Müller, Jürgen', 'iso-8859-1', 'Q')} <jm@customer.test>, bob@customer.test"),
        ("Subject", f"{ew('Заказ №')} {ew('12345 не пришёл')}"),
        *mime("text/plain; charset=utf-8")], b"See subject.\n")
    return raw, {"subject": "Заказ №12345 не пришёл", "from": ["Иван Петров", "ivan@customer.test"],
                 "to": ["support@acme.test"], "cc": ["jm@customer.test", "bob@customer.test"],
                 "cc_names": ["Müller, Jürgen", ""], "defects": False}


@case
def rfc2047_character_split_across_words() -> Case:
    data = "Пример темы".encode()
    first, second = data[:3], data[3:]  # splits the second Cyrillic letter in half
    subject = (f"=?utf-8?B?{base64.b64encode(first).decode()}?=\n "
               f"=?utf-8?B?{base64.b64encode(second).decode()}?=")
    raw = message([("Subject", subject), *mime("text/plain; charset=utf-8")], b"Body\n")
    return raw, {"subject": "Пример темы"}


@case
def rfc2047_broken_words() -> Case:
    raw = message([("Subject", "=?utf-8?B?0J/RgNC40LLQtdGC?= =?bogus-cs?Q?caf=C3=A9?= "
                               "=?utf-8?B?0LzQuNGA?"),  # last word lacks its "="
                   *mime("text/plain; charset=utf-8")], b"Body\n")
    return raw, {"subject_contains": ["Привет", "café"], "defects": True}


@case
def rfc2047_names_hiding_line_breaks() -> Case:
    # Encoded words may carry any byte: decoded as they are, these would put a "Bcc:" line
    # into every reply-all's Cc and a second header after "Re:" of the subject.
    raw = message([
        ("From", f"{ew('Evil' + chr(13) + chr(10) + 'Bcc: victim@evil.test')} <evil@customer.test>"),
        ("Cc", f"{ew('Ann' + chr(0) + chr(0x2028) + 'Lee', 'utf-8', 'Q')} <ann@customer.test>, "
               f"{ew('Bob' + chr(0x85) + chr(9) + ' Roe')} <bob@customer.test>"),
        ("Subject", ew("Invoice" + chr(10) + "X-Injected: yes")),
        *mime("text/plain; charset=utf-8")], b"Please look.\n", msgid="linebreaks")
    return raw, {"from": ["Evil Bcc: victim@evil.test", "evil@customer.test"],
                 "cc": ["ann@customer.test", "bob@customer.test"],
                 "cc_names": ["Ann Lee", "Bob Roe"], "subject": "Invoice X-Injected: yes"}


@case
def header_8bit_utf8_unencoded() -> Case:
    raw = message([("Subject", "Счёт на оплату № 17".encode()),
                   ("From", "Пётр <petr@customer.test>".encode()),
                   *mime("text/plain; charset=utf-8")], "Тело письма\n".encode())
    return raw, {"subject": "Счёт на оплату № 17", "from": ["Пётр", "petr@customer.test"],
                 "defects": True}


@case
def header_8bit_cp1251_unencoded() -> Case:
    raw = message([("Subject", "Счёт на оплату".encode("cp1251")),
                   ("From", "Пётр Иванов <petr@customer.test>".encode("cp1251")),
                   *mime("text/plain; charset=windows-1251"),
                   ("Content-Transfer-Encoding", "8bit")], (RU + "\n").encode("cp1251"))
    return raw, {"subject": "Счёт на оплату", "from": ["Пётр Иванов", "petr@customer.test"],
                 "text_contains": ["Принтер"], "defects": True}


@case
def missing_date_and_message_id() -> Case:
    raw = (b"From: jane@customer.test\nTo: support@acme.test\nSubject: No ids\n\n"
           b"Hello, there is no Message-ID here.\n")
    return raw, {"message_id_synthesized": True, "date": None, "defects": True,
                 "defects_contain": ["missing Message-ID", "missing Date"],
                 "from": ["", "jane@customer.test"]}


@case
def unreadable_date_and_folded_headers() -> Case:
    raw = message([("Date", "Someday, 32 Foo 20xx 25:61"),
                   ("Subject", "A long subject that was\n folded over\n\ttwo lines"),
                   ("References", "<a1@x.test>\n <a2@x.test>\n\t<a3@x.test>"),
                   ("In-Reply-To", "<a3@x.test> (comment)"),
                   *mime("text/plain; charset=utf-8")], b"Body\n")
    return raw, {"date": None, "defects": True,
                 "subject": "A long subject that was folded over two lines",
                 "references": ["a1@x.test", "a2@x.test", "a3@x.test"], "in_reply_to": "a3@x.test"}


@case
def date_with_timezone_is_utc() -> Case:
    raw = message([("Date", "Tue, 16 Jan 2024 23:15:00 -0800"), ("Subject", "tz"),
                   *mime("text/plain; charset=utf-8")], b"Body\n")
    return raw, {"date": "2024-01-17T07:15:00+00:00", "message_id": "corpus@customer.test"}


# --- transfer encodings ---------------------------------------------------------------------------


@case
def qp_soft_line_breaks() -> Case:
    text = ("This line is long enough that quoted-printable has to wrap it with a soft line "
            "break, and it has accents: déjà vu, naïve, Ærø.\n")
    raw = simple(text, "utf-8", cte="quoted-printable")
    assert b"=\n" in raw
    return raw, {"text_contains": ["soft line break, and it has accents: déjà vu, naïve, Ærø."],
                 "defects": False}


@case
def qp_broken_escapes() -> Case:
    body = b"Price =3D 10 =E2=82=AC, broken =ZZ and =4 and trailing =\nend\n"
    raw = message([("Subject", "QP"), *mime("text/plain; charset=utf-8"),
                   ("Content-Transfer-Encoding", "quoted-printable")], body)
    return raw, {"text_contains": ["Price = 10 €", "=ZZ"]}


@case
def base64_broken_padding() -> Case:
    data = base64.b64encode("Оплата прошла, но заказ не оформлен.".encode()).rstrip(b"=")
    raw = message([("Subject", "b64"), *mime("text/plain; charset=utf-8"),
                   ("Content-Transfer-Encoding", "base64")], data[:-1] + b"\n")
    return raw, {"text_contains": ["Оплата прошла"], "defects": True}


@case
def base64_with_garbage_characters() -> Case:
    data = base64.encodebytes("Счёт оплачен, спасибо!".encode())
    raw = message([("Subject", "b64 garbage"), *mime("text/plain; charset=utf-8"),
                   ("Content-Transfer-Encoding", "base64")], b"!!" + data[:8] + b"$%" + data[8:])
    return raw, {"text_contains": ["спасибо"], "defects": True}


@case
def crlf_line_endings() -> Case:
    raw = message([("Subject", "Windows line endings"), *mime("text/plain; charset=utf-8"),
                   ("Content-Transfer-Encoding", "quoted-printable")],
                  b"Line one\nLine two =E2=9C=93\n", crlf=True)
    return raw, {"text_contains": ["Line one\nLine two ✓"], "text_not_contains": ["\r"],
                 "subject": "Windows line endings"}


@case
def format_flowed_text() -> Case:
    body = (b"This paragraph was written as one long line and the client \n"
            b"wrapped it with format=flowed soft breaks.\n"
            b"Second line.\n\n> quoted flowed line that \n> continues here\n")
    raw = message([("Subject", "flowed"),
                   *mime("text/plain; charset=utf-8; format=flowed")], body)
    return raw, {"text_contains": ["the client wrapped it with format=flowed soft breaks.",
                                   "> quoted flowed line that continues here"],
                 "new_text": "This paragraph was written as one long line and the client "
                             "wrapped it with format=flowed soft breaks.\nSecond line."}


# --- broken MIME ------------------------------------------------------------------------------------


@case
def mime_missing_final_boundary() -> Case:
    body = multipart([part(b"First part text.\n"),
                      part(b64(b"%PDF-1.4 fake"), "application/pdf", "base64",
                           ['Content-Disposition: attachment; filename="invoice.pdf"'])],
                     "BOUNDARY-1", close=False)
    raw = message([("Subject", "Unclosed"), *mime('multipart/mixed; boundary="BOUNDARY-1"')],
                  body)
    return raw, {"text_contains": ["First part text."], "attachments": ["invoice.pdf"],
                 "defects": True}


@case
def mime_no_content_type_at_all() -> Case:
    raw = (b"From: jane@customer.test\nTo: support@acme.test\nSubject: Old client\n"
           b"Date: " + DATE.encode() + b"\nMessage-ID: <old@customer.test>\n\n"
           b"Plain old mail without MIME headers.\n")
    return raw, {"text_contains": ["Plain old mail"], "defects": True, "html_is_none": True}


@case
def mime_8bit_body_without_mime_headers() -> Case:
    raw = (b"From: jane@customer.test\nTo: support@acme.test\nSubject: Raw\n"
           b"Date: " + DATE.encode() + b"\nMessage-ID: <raw8@customer.test>\n\n"
           + (RU + "\n").encode("koi8-r"))
    return raw, {"text_contains": ["Принтер снова не печатает"], "defects": True}


@case
def mime_boundary_missing_from_header() -> Case:
    body = multipart([part(b"The text part.\n"),
                      part(b64(b"PNGDATA"), "image/png", "base64",
                           ['Content-Disposition: attachment; filename="shot.png"'])], "lostbnd")
    raw = message([("Subject", "No boundary"), *mime("multipart/mixed")], body)
    return raw, {"text_contains": ["The text part."], "attachments": ["shot.png"],
                 "defects": True}


@case
def mime_garbled_content_type() -> Case:
    raw = message([("Subject", "Garbled"), ("MIME-Version", "1.0"),
                   ("Content-Type", "text/plain; charset"), ("Content-Transfer-Encoding", "8bit")],
                  "Still readable — yes.\n".encode())
    return raw, {"text_contains": ["Still readable — yes."]}


@case
def mime_empty_body() -> Case:
    raw = message([("Subject", "Empty"), *mime("text/plain; charset=utf-8")], b"")
    return raw, {"subject": "Empty", "new_text": "", "attachments": []}


# --- structure ----------------------------------------------------------------------------------


@case
def text_only_plain() -> Case:
    raw = simple("Hi,\n\nI cannot log in to my account since yesterday.\n\nThanks,\nJane\n",
                 "utf-8", subject="Cannot log in")
    return raw, {"subject": "Cannot log in", "from": ["Jane Customer", "jane@customer.test"],
                 "to": ["support@acme.test"], "html_is_none": True, "attachments": [],
                 "new_text": "Hi,\n\nI cannot log in to my account since yesterday.\n\n"
                             "Thanks,\nJane", "automatic_kind": None, "defects": False,
                 "date": DATE_ISO, "message_id": "corpus@customer.test"}


@case
def alternative_plain_and_html() -> Case:
    body = multipart([
        part(b"Hello *team*,\nthe export fails.\n"),
        part(b"<div>Hello <b>team</b>,<br>the export fails.</div>\n", "text/html; charset=utf-8"),
    ], "alt1")
    raw = message([("Subject", "Export"), *mime('multipart/alternative; boundary="alt1"')], body)
    return raw, {"text_contains": ["Hello *team*"], "html_contains": ["<b>team</b>"],
                 "new_text": "Hello *team*,\nthe export fails."}


@case
def nested_related_mixed_alternative() -> Case:
    alt = multipart([
        part(b"See the screenshot of the error.\n"),
        part(b'<p>See the <i>screenshot</i> of the error.</p><img src="cid:shot1@customer.test">\n',
             "text/html; charset=utf-8"),
    ], "alt2")
    related = multipart([
        part(alt, 'multipart/alternative; boundary="alt2"'),
        part(b64(b"\x89PNG\r\n\x1a\nfake"), "image/png", "base64",
             ["Content-ID: <shot1@customer.test>", "Content-Disposition: inline; filename=\"shot.png\""]),
    ], "rel2")
    mixed = multipart([
        part(related, 'multipart/related; boundary="rel2"'),
        part(b64(b"col1,col2\n1,2\n"), "text/csv; name=\"data.csv\"", "base64",
             ['Content-Disposition: attachment; filename="data.csv"']),
    ], "mix2")
    raw = message([("Subject", "Nested"), *mime('multipart/mixed; boundary="mix2"')], mixed)
    return raw, {"text_contains": ["See the screenshot of the error."],
                 "html_contains": ['data-cid="shot1@customer.test"', "<i>screenshot</i>"],
                 "html_not_contains": ["src=\"cid:"],
                 "attachments": ["shot.png", "data.csv"], "inline_cids": ["shot1@customer.test"],
                 "attachment_types": {"shot.png": "image/png", "data.csv": "text/csv"}}


@case
def html_only_simple() -> Case:
    html = ("<html><body><h1>Refund request</h1><p>I would like a refund for order "
            "<b>#4411</b>.</p><ul><li>Item: chair</li><li>Reason: broken leg</li></ul>"
            "<p>Best,<br>Jane</p></body></html>")
    raw = message([("Subject", "Refund"), *mime("text/html; charset=utf-8")], html.encode())
    return raw, {"text_contains": ["Refund request", "refund for order #4411", "- Item: chair",
                                   "Best,\nJane"],
                 "html_contains": ["<b>#4411</b>", "<li>Item: chair</li>"]}


@case
def html_only_malicious() -> Case:
    html = """<html><head><style>body{background:url(https://evil.test/bg)}</style>
<script>alert('head')</script></head><body onload="steal()">
<p onclick="x()">Hello, please see <a href="javascript:alert(document.cookie)">my order</a>
and <a href=" JaVaScRiPt:alert(1)">this</a> and <a href="https://acme.test/ok">the shop</a>.</p>
<img src="x" onerror="alert(1)"><img src="http://tracker.test/pixel.gif">
<img src="data:image/svg+xml;base64,PHN2Zy8+"><img src="https://img.test/ok.png" alt="ok">
<iframe src="https://evil.test/frame"></iframe><object data="x.swf"></object>
<form action="https://evil.test/phish"><input name="password" type="password">
<button>Log in</button></form><svg><script>alert(2)</script></svg>
<a href="vbscript:msgbox(1)">vb</a><div style="position:fixed;top:0;background-image:url(javascript:x)">cover</div>
<math><mi xlink:href="javascript:alert(3)">m</mi></math><base href="https://evil.test/">
<meta http-equiv="refresh" content="0;url=https://evil.test/"><script>alert('body')</script>
<p>Regards, Jane</p></body></html>"""
    raw = message([("Subject", "Hello"), *mime("text/html; charset=utf-8")], html.encode())
    return raw, {
        "text_contains": ["Hello, please see my order", "Regards, Jane"],
        "text_not_contains": ["alert(", "steal"],
        "html_contains": ['href="https://acme.test/ok"', 'src="https://img.test/ok.png"'],
        "html_not_contains": ["<script", "onload", "onclick", "onerror", "javascript:",
                              "JaVaScRiPt", "<iframe", "<object", "<form", "<input", "<style",
                              "http://tracker.test", "data:image", "vbscript", "<svg", "<math",
                              "<base", "<meta", "position:fixed", "url("],
    }


@case
def inline_cid_image_only_html() -> Case:
    related = multipart([
        part(b'<p>Logo below:</p><img src="cid:logo%40acme" alt="logo"><p>and a remote one '
             b'<img src="https://cdn.test/a.png"></p>\n', "text/html; charset=utf-8"),
        part(b64(b"GIF89a-fake"), "image/gif", "base64", ["Content-ID: <logo@acme>"]),
    ], "rel3")
    raw = message([("Subject", "Logo"), *mime('multipart/related; boundary="rel3"')], related)
    return raw, {"html_contains": ['data-cid="logo@acme"', 'src="https://cdn.test/a.png"'],
                 "attachments": ["inline.gif"], "inline_cids": ["logo@acme"],
                 "text_contains": ["Logo below:"]}


@case
def multipart_signed_pgp() -> Case:
    signed = multipart([
        part(b"Signed message body.\n"),
        part(b"-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n",
             'application/pgp-signature; name="signature.asc"', None,
             ['Content-Disposition: attachment; filename="signature.asc"']),
    ], "sig1")
    raw = message([("Subject", "Signed"), *mime(
        'multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; '
        'boundary="sig1"')], signed)
    return raw, {"text_contains": ["Signed message body."], "attachments": ["signature.asc"]}


@case
def forwarded_as_attachment() -> Case:
    inner = message([("From", "Vendor <sales@vendor.test>"), ("To", "jane@customer.test"),
                     ("Subject", "Your quote"), *mime("text/plain; charset=utf-8")],
                    b"Here is the quote you asked for.\n", msgid="inner-quote")
    body = multipart([part(b"Please check the quote below, is it right?\n"),
                      part(inner, "message/rfc822")], "fwd1")
    raw = message([("Subject", "Fwd: Your quote"), *mime('multipart/mixed; boundary="fwd1"')],
                  body)
    return raw, {"text_contains": ["Please check the quote"],
                 "text_not_contains": ["Here is the quote"],
                 "attachments": ["Your quote.eml"],
                 "attachment_types": {"Your quote.eml": "message/rfc822"},
                 "forwarded": [{"from": "Vendor <sales@vendor.test>",
                                "to": ["jane@customer.test"], "cc": [],
                                "subject": "Your quote", "date": DATE}]}


@case
def forwarded_inline_gmail() -> Case:
    text = ("FYI — this is what the courier told me.\n\n"
            "---------- Forwarded message ---------\n"
            "From: Courier <noreply@courier.test>\nDate: Sun, Jan 14, 2024 at 9:00 AM\n"
            "Subject: Delivery failed\nTo: <jane@customer.test>\n\n"
            "We could not deliver your parcel.\n")
    raw = simple(text, "utf-8", subject="Fwd: Delivery failed")
    return raw, {"new_text": "FYI — this is what the courier told me.",
                 "quoted_contains": ["We could not deliver your parcel."],
                 "text_contains": ["We could not deliver your parcel."],
                 "forwarded": [{"from": "Courier <noreply@courier.test>",
                                "to": ["jane@customer.test"], "cc": [],
                                "subject": "Delivery failed",
                                "date": "Sun, Jan 14, 2024 at 9:00 AM"}]}


# --- attachments ---------------------------------------------------------------------------------


@case
def attachment_rfc2231_utf8_name() -> Case:
    body = multipart([part(b"Contract attached.\n"), part(
        b64(b"%PDF-1.7"), "application/pdf", "base64",
        ["Content-Disposition: attachment; filename*=UTF-8''%D0%94%D0%BE%D0%B3%D0%BE%D0%B2"
         "%D0%BE%D1%80%20%E2%84%96%205.pdf"])], "att1")
    raw = message([("Subject", "Contract"), *mime('multipart/mixed; boundary="att1"')], body)
    # NFKC turns "№" into "No": look-alikes are normalised on purpose.
    return raw, {"attachments": ["Договор No 5.pdf"],
                 "attachment_types": {"Договор No 5.pdf": "application/pdf"}}


@case
def attachment_rfc2231_continuations() -> Case:
    body = multipart([part(b"See files.\n"), part(
        b64(b"data"), "application/octet-stream", "base64",
        ["Content-Disposition: attachment;",
         " filename*0*=utf-8''%E5%B9%B4%E5%BA%A6%E6%8A%A5%E5%91%8A;",
         " filename*1*=%E2%80%94%E6%9C%80%E7%BB%88%E7%89%88;", ' filename*2=".xlsx"'])], "att2")
    raw = message([("Subject", "Report"), *mime('multipart/mixed; boundary="att2"')], body)
    return raw, {"attachments": ["年度报告—最终版.xlsx"]}


@case
def attachment_rfc2047_name_outlook_style() -> Case:
    name = ew("Счёт-фактура.docx")
    body = multipart([part(b"Invoice.\n"), part(
        b64(b"PK\x03\x04"), f'application/vnd.openxmlformats-officedocument.wordprocessingml'
        f'.document; name="{name}"', "base64",
        [f'Content-Disposition: attachment; filename="{name}"'])], "att3")
    raw = message([("Subject", "Invoice"), *mime('multipart/mixed; boundary="att3"')], body)
    return raw, {"attachments": ["Счёт-фактура.docx"]}


@case
def attachment_evil_names() -> Case:
    names = ["../../etc/passwd", "C:\\boot.ini", "/etc/shadow", "invoice\u202egpj.exe",
             "zero\u200bwidth\u200d.txt", "a\u2215b\u2044c\uff0fd\u29f8e.txt", "..", "CON.txt",
             "   .hidden"]
    parts = [part(b"Files.\n")]
    for i, n in enumerate(names):
        encoded = "utf-8''" + "".join(
            c if c.isalnum() or c in ".-_" else "".join(f"%{b:02X}" for b in c.encode())
            for c in n)
        parts.append(part(b64(f"file {i}".encode()), "application/octet-stream", "base64",
                          [f"Content-Disposition: attachment; filename*={encoded}"]))
    raw = message([("Subject", "Evil names"), *mime('multipart/mixed; boundary="evil"')],
                  multipart(parts, "evil"))
    return raw, {"attachments": ["passwd", "boot.ini", "shadow", "invoicegpj.exe",
                                 "zerowidth.txt", "e.txt", "attachment", "_CON.txt", "hidden"]}


@case
def attachment_name_only_in_content_type() -> Case:
    body = multipart([part(b"Photo.\n"), part(b64(b"\xff\xd8\xff\xe0jpeg"),
                                              'image/jpeg; name="holiday photo.jpg"', "base64")],
                     "att4")
    raw = message([("Subject", "Photo"), *mime('multipart/mixed; boundary="att4"')], body)
    return raw, {"attachments": ["holiday photo.jpg"],
                 "attachment_types": {"holiday photo.jpg": "image/jpeg"}}


@case
def attachment_without_name() -> Case:
    body = multipart([part(b"Unnamed.\n"), part(b64(b"%PDF-1.4"), "application/pdf", "base64",
                                                ["Content-Disposition: attachment"])], "att5")
    raw = message([("Subject", "Unnamed"), *mime('multipart/mixed; boundary="att5"')], body)
    return raw, {"attachments": ["attachment.pdf"]}


@case
def attachment_text_file_is_not_body() -> Case:
    body = multipart([part(b"Log attached.\n"), part(
        b"ERROR 42 at line 7\n", "text/plain; charset=utf-8", None,
        ['Content-Disposition: attachment; filename="error.log"'])], "att6")
    raw = message([("Subject", "Log"), *mime('multipart/mixed; boundary="att6"')], body)
    return raw, {"text_contains": ["Log attached."], "text_not_contains": ["ERROR 42"],
                 "attachments": ["error.log"]}


@case
def attachment_over_the_size_limit() -> Case:
    # Parsed with a limit of 1 KiB: the 4 KiB scan is listed, not loaded, with the reason;
    # the mail and its small file are kept.
    body = multipart([part(b"The scan is attached, and my notes.\n"), part(
        b64(bytes(range(256)) * 16), "application/pdf", "base64",
        ['Content-Disposition: attachment; filename="scan.pdf"']), part(
        b64(b"short notes"), "text/plain; charset=utf-8", "base64",
        ['Content-Disposition: attachment; filename="notes.txt"'])], "att9")
    raw = message([("Subject", "Scan"), *mime('multipart/mixed; boundary="att9"')], body)
    return raw, {"max_attachment_bytes": 1024, "text_contains": ["The scan is attached"],
                 "attachments": ["scan.pdf", "notes.txt"], "not_loaded": ["scan.pdf"],
                 "defects_contain": ["'scan.pdf' not loaded: 4096 bytes is over the limit "
                                     "of 1024"]}


@case
def attachment_8bit_raw_filename() -> Case:
    body = multipart([part(b"Scan.\n"), part(
        b64(b"data"), "application/pdf", "base64",
        ['Content-Disposition: attachment; filename="Скан паспорта.pdf"'])], "att7")
    raw = message([("Subject", "Scan"), *mime('multipart/mixed; boundary="att7"')],
                  body.replace("Скан паспорта".encode(), "Скан паспорта".encode("cp1251")))
    return raw, {"attachments": ["Скан паспорта.pdf"], "defects": True}


@case
def calendar_invite_outlook() -> Case:
    ics = ("BEGIN:VCALENDAR\nMETHOD:REQUEST\nPRODID:Microsoft Exchange Server 2010\n"
           "VERSION:2.0\nBEGIN:VEVENT\nSUMMARY:Onboarding call\n"
           "DTSTART:20240120T100000Z\nDTEND:20240120T110000Z\nUID:abc-123\n"
           "END:VEVENT\nEND:VCALENDAR\n")
    alt = multipart([part(b"You are invited to: Onboarding call\n"),
                     part(b"<p>You are invited to: <b>Onboarding call</b></p>\n",
                          "text/html; charset=utf-8"),
                     part(ics.encode(), 'text/calendar; charset=utf-8; method=REQUEST')], "cal1")
    raw = message([("Subject", "Invitation: Onboarding call"),
                   *mime('multipart/alternative; boundary="cal1"')], alt)
    return raw, {"is_calendar": True, "calendar_method": "REQUEST",
                 "attachments": ["invite.ics"], "text_contains": ["Onboarding call"],
                 "attachment_types": {"invite.ics": "text/calendar"}, "automatic_kind": None}


@case
def calendar_ics_attachment_cancel() -> Case:
    ics = b"BEGIN:VCALENDAR\nMETHOD:CANCEL\nBEGIN:VEVENT\nSUMMARY:Demo\nEND:VEVENT\nEND:VCALENDAR\n"
    body = multipart([part(b"The demo is cancelled.\n"),
                      part(b64(ics), 'application/ics; name="meeting.ics"', "base64",
                           ['Content-Disposition: attachment; filename="meeting.ics"'])], "cal2")
    raw = message([("Subject", "Cancelled: Demo"), *mime('multipart/mixed; boundary="cal2"')],
                  body)
    return raw, {"is_calendar": True, "calendar_method": "CANCEL", "attachments": ["meeting.ics"]}


# --- bounces ---------------------------------------------------------------------------------------

OUR_ID = "fd.42.abcdefgh.abcdefghijklmnop@acme.test"


def _original(extra: str = "") -> bytes:
    return message([("From", SUPPORT), ("To", "gone@nowhere.test"), ("Subject", "Re: Your ticket"),
                    ("Message-ID", f"<{OUR_ID}>"), *mime("text/plain; charset=utf-8")],
                   f"Hello, here is our answer.{extra}\n".encode(), defaults=False)


@case
def bounce_postfix() -> Case:
    status = (b"Reporting-MTA: dns; mail.acme.test\nX-Postfix-Queue-ID: 4F1A2B3C\n"
              b"Arrival-Date: Mon, 15 Jan 2024 10:29:58 +0100\n\n"
              b"Final-Recipient: rfc822; gone@nowhere.test\nOriginal-Recipient: rfc822;gone@nowhere.test\n"
              b"Action: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.nowhere.test\n"
              b"Diagnostic-Code: smtp; 550 5.1.1 <gone@nowhere.test>: Recipient address\n"
              b"    rejected: User unknown in virtual mailbox table\n")
    headers_only = _original().split(b"\n\n", 1)[0] + b"\n"
    body = multipart([
        part(b"This is the mail system at host mail.acme.test.\n\nI'm sorry to have to inform "
             b"you that your message could not\nbe delivered to one or more recipients.\n\n"
             b"<gone@nowhere.test>: host mx.nowhere.test said: 550 5.1.1 User unknown\n",
             "text/plain; charset=us-ascii", None, ["Content-Description: Notification"]),
        part(status, "message/delivery-status", None, ["Content-Description: Delivery report"]),
        part(headers_only, "text/rfc822-headers", None, ["Content-Description: Undelivered Message Headers"]),
    ], "pfx1")
    raw = message([("From", "MAILER-DAEMON@mail.acme.test (Mail Delivery System)"),
                   ("To", "support@acme.test"), ("Subject", "Undelivered Mail Returned to Sender"),
                   ("Auto-Submitted", "auto-replied"),
                   *mime('multipart/report; report-type=delivery-status; boundary="pfx1"')], body)
    return raw, {"is_bounce": True, "automatic_kind": "bounce",
                 "bounce_original_message_id": OUR_ID, "bounce_status": "5.1.1",
                 "bounce_recipient": "gone@nowhere.test", "bounce_standard": True,
                 "bounce_diagnostic_contains": "User unknown in virtual mailbox table"}


@case
def bounce_exchange() -> Case:
    status = (b"Reporting-MTA: dns;EXCH01.corp.test\nReceived-From-MTA: dns;EXCH02.corp.test\n"
              b"Arrival-Date: Mon, 15 Jan 2024 09:29:59 +0000\n\n"
              b"Final-Recipient: rfc822;gone@nowhere.test\nAction: failed\nStatus: 5.4.1\n"
              b"Diagnostic-Code: smtp;550 5.4.1 Recipient address rejected: Access denied.\n")
    body = multipart([
        part(b"<html><body><p><b>Your message to gone@nowhere.test couldn't be delivered."
             b"</b></p><p>gone wasn't found at nowhere.test.</p></body></html>\n",
             "text/html; charset=us-ascii"),
        part(status, "message/delivery-status"),
        part(_original(), "message/rfc822"),
    ], "exch1")
    raw = message([("From", "Microsoft Outlook <postmaster@corp.test>"),
                   ("To", "support@acme.test"), ("Subject", "Undeliverable: Re: Your ticket"),
                   ("X-MS-Exchange-Message-Is-Ndr", ""), ("Auto-Submitted", "auto-replied"),
                   *mime('multipart/report; report-type=delivery-status; boundary="exch1"')],
                  body)
    return raw, {"is_bounce": True, "automatic_kind": "bounce",
                 "bounce_original_message_id": OUR_ID, "bounce_status": "5.4.1",
                 "bounce_recipient": "gone@nowhere.test",
                 "text_contains": ["couldn't be delivered"],
                 "attachments": ["delivery-status.txt", "original-message.eml"]}


@case
def bounce_gmail() -> Case:
    status = (b"Reporting-MTA: dns; googlemail.com\nArrival-Date: Mon, 15 Jan 2024 01:29:59 -0800 (PST)\n"
              b"X-Original-Message-ID: <" + OUR_ID.encode() + b">\n\n"
              b"Final-Recipient: rfc822; gone@nowhere.test\nAction: failed\nStatus: 5.1.1\n"
              b"Remote-MTA: dns; mx.nowhere.test. (203.0.113.5, the server for the domain nowhere.test.)\n"
              b"Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist.\n"
              b"Last-Attempt-Date: Mon, 15 Jan 2024 01:30:00 -0800 (PST)\n")
    alt = multipart([
        part(b"** Address not found **\n\nYour message wasn't delivered to gone@nowhere.test "
             b"because the address couldn't be found.\n"),
        part(b"<html><body><h2>Address not found</h2><p>Your message wasn't delivered.</p>"
             b"</body></html>\n", "text/html; charset=UTF-8"),
    ], "galt")
    body = multipart([
        part(alt, 'multipart/alternative; boundary="galt"'),
        part(status, "message/delivery-status"),
        part(_original(), "message/rfc822"),
    ], "gmail1")
    raw = message([("From", "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"),
                   ("To", "support@acme.test"), ("Subject", "Delivery Status Notification (Failure)"),
                   ("Auto-Submitted", "auto-replied"),
                   *mime('multipart/report; report-type=delivery-status; boundary="gmail1"')],
                  body)
    return raw, {"is_bounce": True, "automatic_kind": "bounce",
                 "bounce_original_message_id": OUR_ID, "bounce_status": "5.1.1",
                 "text_contains": ["Address not found"]}


@case
def bounce_qmail_plain_text() -> Case:
    text = ("Hi. This is the qmail-send program at mail.nowhere.test.\n"
            "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
            "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
            "<gone@nowhere.test>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
            "--- Below this line is a copy of the message.\n\n"
            + _original().decode())
    raw = message([("From", "MAILER-DAEMON@mail.nowhere.test"), ("To", "support@acme.test"),
                   ("Subject", "failure notice"), *mime("text/plain; charset=us-ascii")],
                  text.encode())
    return raw, {"is_bounce": True, "automatic_kind": "bounce", "bounce_standard": False,
                 "bounce_original_message_id": OUR_ID, "bounce_recipient": "gone@nowhere.test",
                 "bounce_status": "5.1.1"}


@case
def dsn_delayed_is_not_a_failure() -> Case:
    status = (b"Reporting-MTA: dns; mail.acme.test\n\nFinal-Recipient: rfc822; slow@far.test\n"
              b"Action: delayed\nStatus: 4.4.7\nWill-Retry-Until: Wed, 17 Jan 2024 10:00:00 +0100\n")
    body = multipart([part(b"Delivery to slow@far.test is delayed; we will keep trying.\n"),
                      part(status, "message/delivery-status"),
                      part(_original().split(b"\n\n")[0] + b"\n", "text/rfc822-headers")], "dly1")
    raw = message([("From", "MAILER-DAEMON@mail.acme.test"), ("To", "support@acme.test"),
                   ("Subject", "Delayed Mail (still being retried)"),
                   *mime('multipart/report; report-type=delivery-status; boundary="dly1"')], body)
    return raw, {"is_bounce": False, "automatic_kind": "bounce",
                 "bounce_original_message_id": OUR_ID, "bounce_status": "4.4.7"}


@case
def read_receipt_mdn() -> Case:
    mdn = (b"Reporting-UA: customer.test; Thunderbird\nFinal-Recipient: rfc822;jane@customer.test\n"
           b"Original-Message-ID: <" + OUR_ID.encode() + b">\n"
           b"Disposition: manual-action/MDN-sent-manually; displayed\n")
    body = multipart([part(b"This is a Return Receipt for the mail that you sent.\n"),
                      part(mdn, "message/disposition-notification")], "mdn1")
    raw = message([("Subject", "Return Receipt (displayed) - Re: Your ticket"),
                   ("In-Reply-To", f"<{OUR_ID}>"),
                   *mime('multipart/report; report-type=disposition-notification; '
                         'boundary="mdn1"')], body)
    return raw, {"automatic_kind": "auto-replied", "is_bounce": False, "in_reply_to": OUR_ID}


# --- automatic mail ----------------------------------------------------------------------------


@case
def ooo_outlook_english() -> Case:
    raw = message([("Subject", "Automatic reply: Re: Your ticket [#42]"),
                   ("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All"),
                   ("In-Reply-To", f"<{OUR_ID}>"), *mime("text/plain; charset=utf-8")],
                  b"I am out of the office until January 22 with limited access to e-mail.\n")
    return raw, {"automatic_kind": "auto-replied", "suppress_auto_reply": True,
                 "in_reply_to": OUR_ID}


@case
def ooo_russian_subject_only() -> Case:
    raw = simple("Я в отпуске до 22 января. По срочным вопросам пишите коллеге.\n", "koi8-r",
                 subject=ew("Автоматический ответ: Re: Ваш заказ", "koi8-r"))
    return raw, {"automatic_kind": "auto-replied", "subject": "Автоматический ответ: Re: Ваш заказ"}


@case
def ooo_german() -> Case:
    raw = simple("Ich bin bis zum 22.01. nicht im Büro.\n", "iso-8859-1",
                 subject=ew("Abwesenheitsnotiz: Ihre Anfrage", "iso-8859-1", "Q"))
    return raw, {"automatic_kind": "auto-replied", "subject": "Abwesenheitsnotiz: Ihre Anfrage"}


@case
def ooo_chinese() -> Case:
    raw = simple("您好，我正在休假，1月22日返回。\n", "gb2312", subject=ew("自动回复: 订单问题", "gb2312"))
    return raw, {"automatic_kind": "auto-replied", "subject": "自动回复: 订单问题"}


@case
def ooo_arabic() -> Case:
    raw = simple("أنا خارج المكتب حتى 22 يناير.\n", "windows-1256",
                 subject=ew("رد تلقائي: طلبك", "windows-1256"))
    return raw, {"automatic_kind": "auto-replied", "subject": "رد تلقائي: طلبك"}


@case
def ooo_french() -> Case:
    raw = simple("Je suis absente jusqu'au 22 janvier.\n", "utf-8",
                 subject=ew("Réponse automatique : Votre demande"))
    return raw, {"automatic_kind": "auto-replied"}


@case
def auto_submitted_auto_replied_ack() -> Case:
    raw = message([("Subject", "We received your request"), ("Auto-Submitted", "auto-replied"),
                   *mime("text/plain; charset=utf-8")], b"Thank you, a ticket was created.\n")
    return raw, {"automatic_kind": "auto-replied", "suppress_auto_reply": True}


@case
def x_autoreply_header() -> Case:
    raw = message([("Subject", "Re: Question"), ("X-Autoreply", "yes"),
                   *mime("text/plain; charset=utf-8")], b"I will answer when I am back.\n")
    return raw, {"automatic_kind": "auto-replied"}


@case
def x_autorespond_header() -> Case:
    raw = message([("Subject", "Thanks for your e-mail"), ("X-Autorespond", "Thanks"),
                   *mime("text/plain; charset=utf-8")], b"This is an automated response.\n")
    return raw, {"automatic_kind": "auto-replied"}


@case
def precedence_bulk_newsletter() -> Case:
    raw = message([("From", "Shop News <news@shop.test>"), ("Subject", "January deals"),
                   ("Precedence", "bulk"),
                   ("List-Unsubscribe", "<https://shop.test/unsub?u=1>, <mailto:unsub@shop.test>"),
                   *mime("text/html; charset=utf-8")], b"<p>Big <b>sale</b>!</p>\n")
    return raw, {"automatic_kind": "bulk", "text_contains": ["Big sale!"]}


@case
def mailing_list_post() -> Case:
    raw = message([("From", "Dev Person <dev@lists.test>"), ("To", "users@lists.test"),
                   ("Cc", SUPPORT), ("Subject", "[users] Release 2.0 is out"),
                   ("List-Id", "Users of the thing <users.lists.test>"),
                   ("List-Post", "<mailto:users@lists.test>"), ("Precedence", "list"),
                   *mime("text/plain; charset=utf-8")], b"Release notes inside.\n")
    return raw, {"automatic_kind": "list", "list_id": "Users of the thing <users.lists.test>",
                 "cc": ["support@acme.test"]}


@case
def monitoring_alert_nagios() -> Case:
    text = ("***** Nagios *****\n\nNotification Type: PROBLEM\n\nService: HTTP\n"
            "Host: web01\nState: CRITICAL\n\nDate/Time: Mon Jan 15 10:30:00 CET 2024\n\n"
            "Additional Info:\nHTTP CRITICAL - Socket timeout after 10 seconds\n")
    raw = message([("From", "nagios@monitor.acme.test"),
                   ("Subject", "** PROBLEM Service Alert: web01/HTTP is CRITICAL **"),
                   ("Auto-Submitted", "auto-generated"), *mime("text/plain; charset=us-ascii")],
                  text.encode())
    return raw, {"automatic_kind": "auto-generated", "is_bounce": False,
                 "text_contains": ["State: CRITICAL"], "from": ["", "nagios@monitor.acme.test"]}


@case
def monitoring_alert_zabbix_no_headers() -> Case:
    raw = message([("From", "Zabbix <zabbix@monitor.acme.test>"),
                   ("Subject", "Problem: Disk space is low on db01"),
                   *mime("text/plain; charset=utf-8")],
                  b"Problem started at 10:30:00 on 2024.01.15\nProblem name: Disk space is low\n"
                  b"Host: db01\nSeverity: High\n")
    return raw, {"automatic_kind": None, "new_text_contains": ["Severity: High"]}


@case
def noreply_sender_notification() -> Case:
    raw = message([("From", "Shop <no-reply@shop.test>"), ("Subject", "Your order has shipped"),
                   *mime("text/plain; charset=utf-8")], b"Order 12345 has shipped.\n")
    return raw, {"automatic_kind": "auto-generated"}


@case
def outlook_suppress_header_on_human_mail() -> Case:
    raw = message([("Subject", "Question about the invoice"),
                   ("X-Auto-Response-Suppress", "All"), ("X-MS-Has-Attach", ""),
                   *mime("text/plain; charset=utf-8")], b"Hello, the invoice total is wrong.\n")
    return raw, {"automatic_kind": None, "suppress_auto_reply": True}


@case
def auto_submitted_no_is_a_person() -> Case:
    raw = message([("Subject", "Hello"), ("Auto-Submitted", "no"),
                   *mime("text/plain; charset=utf-8")], b"Written by a person.\n")
    return raw, {"automatic_kind": None, "suppress_auto_reply": False}


# --- replies ----------------------------------------------------------------------------------------

QUOTED = "> Hello Jane,\n>\n> please restart the printer and tell us what happens.\n>\n> Acme Support\n"


def _reply(text: str, html: str | None = None, *, subject: str = "Re: Printer",
           charset: str = "utf-8", extra: list[tuple[str, str | bytes]] | None = None) -> bytes:
    threading = [("In-Reply-To", f"<{OUR_ID}>"), ("References", f"<first@customer.test> <{OUR_ID}>")]
    if html is None:
        return message([("Subject", subject), *threading, *(extra or []),
                        *mime(f"text/plain; charset={charset}"),
                        ("Content-Transfer-Encoding", "8bit")], text.encode(charset))
    body = multipart([part(text.encode(charset), f"text/plain; charset={charset}", "8bit"),
                      part(html.encode(charset), f"text/html; charset={charset}", "8bit")], "rep")
    return message([("Subject", subject), *threading, *(extra or []),
                    *mime('multipart/alternative; boundary="rep"')], body)


@case
def reply_gmail_english() -> Case:
    text = ("It still does not work after the restart.\n\n"
            "On Mon, Jan 15, 2024 at 10:00 AM Acme Support <support@acme.test> wrote:\n\n" + QUOTED)
    html = ('<div dir="ltr">It still does not work after the restart.</div><br>'
            '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, Jan 15, 2024 at '
            '10:00 AM Acme Support &lt;<a href="mailto:support@acme.test">support@acme.test</a>'
            '&gt; wrote:<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px '
            '0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex">Hello Jane,<br>'
            'please restart the printer.</blockquote></div>')
    return _reply(text, html), {
        "new_text": "It still does not work after the restart.",
        "quoted_contains": ["please restart the printer"], "in_reply_to": OUR_ID,
        "references": ["first@customer.test", OUR_ID],
        "html_contains": ['class="gmail_quote"']}


@case
def reply_gmail_english_wrapped_attribution() -> Case:
    text = ("Done, thanks!\n\nOn Mon, Jan 15, 2024 at 10:00 AM Acme Support Team of Example <\n"
            "support@acme.test> wrote:\n\n" + QUOTED)
    return _reply(text), {"new_text": "Done, thanks!"}


@case
def reply_gmail_russian() -> Case:
    text = ("Перезагрузил, не помогло.\n\n"
            "пн, 15 янв. 2024 г. в 10:00, Acme Support <support@acme.test>:\n\n" + QUOTED)
    return _reply(text), {"new_text": "Перезагрузил, не помогло."}


@case
def reply_yandex_russian_pishet() -> Case:
    text = ("Спасибо, заработало!\n\n15.01.2024, 10:00, \"Acme Support\" <support@acme.test>:\n"
            + QUOTED)
    return _reply(text, charset="koi8-r"), {"new_text": "Спасибо, заработало!"}


@case
def reply_thunderbird_russian() -> Case:
    text = "Проблема осталась.\n\n15.01.2024 10:00, Acme Support пишет:\n" + QUOTED
    return _reply(text, charset="windows-1251"), {"new_text": "Проблема осталась."}


@case
def reply_gmail_chinese() -> Case:
    text = ("重启以后还是不行。\n\nAcme Support <support@acme.test> 于2024年1月15日周一 10:00写道：\n\n"
            + QUOTED)
    return _reply(text, charset="gb18030"), {"new_text": "重启以后还是不行。"}


@case
def reply_gmail_arabic() -> Case:
    text = ("ما زالت المشكلة قائمة.\n\n"
            "في الاثنين، 15 يناير 2024 في 10:00 ص كتب Acme Support <support@acme.test>:\n\n"
            + QUOTED)
    return _reply(text, charset="windows-1256"), {"new_text": "ما زالت المشكلة قائمة."}


@case
def reply_gmail_german() -> Case:
    text = ("Es funktioniert immer noch nicht.\n\n"
            "Am Mo., 15. Jan. 2024 um 10:00 Uhr schrieb Acme Support <support@acme.test>:\n\n"
            + QUOTED)
    return _reply(text, charset="iso-8859-1"), {"new_text": "Es funktioniert immer noch nicht."}


@case
def reply_gmail_french() -> Case:
    text = ("Toujours en panne.\n\n"
            "Le lun. 15 janv. 2024 à 10:00, Acme Support <support@acme.test> a écrit :\n\n" + QUOTED)
    return _reply(text), {"new_text": "Toujours en panne."}


@case
def reply_outlook_desktop_original_message() -> Case:
    text = ("Please call me back tomorrow.\n\nRegards\nJane\n\n"
            "-----Original Message-----\nFrom: Acme Support <support@acme.test>\n"
            "Sent: Monday, January 15, 2024 10:00 AM\nTo: Jane Customer <jane@customer.test>\n"
            "Subject: Printer\n\nHello Jane,\nplease restart the printer.\n")
    return _reply(text, subject="RE: Printer"), {
        "new_text": "Please call me back tomorrow.\n\nRegards\nJane",
        "quoted_contains": ["please restart the printer"]}


@case
def reply_outlook_web_html_only() -> Case:
    html = ('<html><body><div style="font-family: Calibri">The order number is 4411.</div>'
            '<div><br></div><hr style="display:inline-block;width:98%" tabindex="-1">'
            '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>From:</b> Acme Support '
            '&lt;support@acme.test&gt;<br><b>Sent:</b> Monday, January 15, 2024 10:00<br>'
            '<b>To:</b> Jane Customer<br><b>Subject:</b> Printer</font><div>&nbsp;</div></div>'
            '<div>Hello Jane, which order is it?</div></body></html>')
    raw = message([("Subject", "RE: Printer"), ("In-Reply-To", f"<{OUR_ID}>"),
                   *mime("text/html; charset=utf-8")], html.encode())
    return raw, {"new_text": "The order number is 4411.",
                 "quoted_contains": ["which order is it?"],
                 "text_contains": ["which order is it?"]}


@case
def reply_outlook_german_header_block() -> Case:
    text = ("Vielen Dank, das hat geholfen.\n\n"
            "________________________________\nVon: Acme Support <support@acme.test>\n"
            "Gesendet: Montag, 15. Januar 2024 10:00\nAn: Jane Customer\nBetreff: Drucker\n\n"
            "Hallo Jane,\nbitte starten Sie den Drucker neu.\n")
    return _reply(text, subject="AW: Drucker"), {"new_text": "Vielen Dank, das hat geholfen.",
                                                 "quoted_contains": ["Drucker neu"]}


@case
def reply_outlook_russian_header_block() -> Case:
    text = ("Добрый день, проблема решена.\n\n"
            "От: Acme Support <support@acme.test>\nОтправлено: 15 января 2024 г. 10:00\n"
            "Кому: Jane Customer\nТема: Принтер\n\nЗдравствуйте!\n")
    return _reply(text, charset="windows-1251", subject="RE: " + ew("Принтер")), {
        "new_text": "Добрый день, проблема решена."}


@case
def reply_apple_mail_iphone() -> Case:
    text = ("Yes, the light is red.\n\nSent from my iPhone\n\n"
            "> On Jan 15, 2024, at 10:00, Acme Support <support@acme.test> wrote:\n>\n" + QUOTED)
    html = ('<html><body dir="auto">Yes, the light is red.<br><br><div dir="ltr">Sent from my '
            'iPhone</div><div dir="ltr"><br><blockquote type="cite">On Jan 15, 2024, at 10:00, '
            'Acme Support &lt;support@acme.test&gt; wrote:<br><br></blockquote></div>'
            '<blockquote type="cite"><div dir="ltr">Hello Jane</div></blockquote></body></html>')
    return _reply(text, html), {"new_text": "Yes, the light is red.",
                                "html_contains": ['<blockquote type="cite">']}


@case
def reply_apple_mail_html_only() -> Case:
    html = ('<html><body>Tried it twice, no change.<div><br><blockquote type="cite"><div>On '
            '15 Jan 2024, at 10:00, Acme Support &lt;support@acme.test&gt; wrote:</div><br>'
            '<div>Hello Jane, please restart it.</div></blockquote></div></body></html>')
    raw = message([("Subject", "Re: Printer"), *mime("text/html; charset=utf-8")], html.encode())
    return raw, {"new_text": "Tried it twice, no change.",
                 "text_contains": ["> Hello Jane, please restart it."]}


@case
def reply_thunderbird_with_signature() -> Case:
    text = ("Here is the photo you asked for.\n\n"
            "On 15.01.24 10:00, Acme Support wrote:\n" + QUOTED + "\n-- \nJane Customer\n+1 555 0100\n")
    html = ('<html><body><p>Here is the photo you asked for.</p><div class="moz-cite-prefix">'
            'On 15.01.24 10:00, Acme Support wrote:<br></div><blockquote type="cite" '
            'cite="mid:x@acme.test">Hello Jane</blockquote><pre class="moz-signature" cols="72">'
            '-- \nJane Customer</pre></body></html>')
    return _reply(text, html), {"new_text": "Here is the photo you asked for.",
                                "html_contains": ['class="moz-cite-prefix"']}


@case
def reply_signature_only_no_quote() -> Case:
    text = "Please close the ticket.\n\n-- \nJane Customer\nCustomer Inc.\n"
    return _reply(text), {"new_text": "Please close the ticket.",
                          "quoted_contains": ["Customer Inc."]}


@case
def reply_inline_interleaved() -> Case:
    text = ("> Which model is it?\nThe X200.\n\n> When did you buy it?\nIn March.\n\n"
            "> Acme Support\n")
    return _reply(text), {"new_text_contains": ["The X200.", "In March.", "> Which model is it?"],
                          "new_text_not_contains": ["> Acme Support"]}


@case
def reply_only_quote_falls_back_to_full_text() -> Case:
    text = "On Mon, Jan 15, 2024 at 10:00 AM Acme Support <support@acme.test> wrote:\n" + QUOTED
    return _reply(text), {"new_text_contains": ["please restart the printer"]}


@case
def reply_mobile_footers_multilingual() -> Case:
    text = "Отправил фото.\n\nОтправлено с iPhone\n"
    return _reply(text), {"new_text": "Отправил фото."}


@case
def reply_with_cc_and_reply_to() -> Case:
    raw = message([
        ("From", "Jane Customer <jane@customer.test>"),
        ("To", "Acme Support <support+c42.aaaaaaaaaaaaaaaa@acme.test>"),
        ("Cc", "Bob Boss <bob@customer.test>, \"Ops, Team\" <ops@customer.test>"),
        ("Reply-To", "Jane Work <jane.work@customer.test>"),
        ("Subject", "Re: [#42] Printer"), ("In-Reply-To", f"<{OUR_ID}>"),
        *mime("text/plain; charset=utf-8")], b"Adding my boss and ops in copy.\n")
    return raw, {"cc": ["bob@customer.test", "ops@customer.test"],
                 "cc_names": ["Bob Boss", "Ops, Team"],
                 "reply_to": ["jane.work@customer.test"],
                 "to": ["support+c42.aaaaaaaaaaaaaaaa@acme.test"], "subject": "Re: [#42] Printer"}


@case
def reply_delivered_to_plus_address() -> Case:
    raw = message([("Delivered-To", "support+c7.bbbbbbbbbbbbbbbb@acme.test"),
                   ("X-Original-To", "support+c7.bbbbbbbbbbbbbbbb@acme.test"),
                   ("Subject", "Re: Hello"), *mime("text/plain; charset=utf-8")], b"Answer.\n")
    return raw, {"delivered_to": ["support+c7.bbbbbbbbbbbbbbbb@acme.test"]}


# --- writing -------------------------------------------------------------------------------------


def build() -> dict[str, tuple[bytes, bytes]]:
    out: dict[str, tuple[bytes, bytes]] = {}
    for name, fn in CASES.items():
        raw, expected = fn()
        js = json.dumps(expected, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        out[name] = (raw, js.encode("utf-8"))
    return out


def main(argv: list[str]) -> int:
    built = build()
    if "--check" in argv:
        stale = [n for n, (raw, js) in built.items()
                 if not (HERE / f"{n}.eml").exists()
                 or (HERE / f"{n}.eml").read_bytes() != raw
                 or (HERE / f"{n}.expected.json").read_bytes() != js]
        for n in stale:
            print(f"stale: {n}")
        return 1 if stale else 0
    for name, (raw, js) in built.items():
        (HERE / f"{name}.eml").write_bytes(raw)
        (HERE / f"{name}.expected.json").write_bytes(js)
    print(f"wrote {len(built)} messages to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
