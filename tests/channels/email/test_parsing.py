"""parse_email: behaviour the corpus does not show by example, and its promise never to
raise anything but UnparseableEmail."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontdesk.channels.email import ParsedEmail, UnparseableEmail, parse_email
from frontdesk.channels.email.headers import make_message_id, make_reply_address
from frontdesk.channels.email.threads import thread_hints

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mail"
SAMPLES = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
SECRET = "test-secret-0123456789abcdef"


def _with_attachment(data: bytes, name: str = "big.bin") -> bytes:
    return (
        b"From: jane@customer.test\nTo: support@acme.test\nSubject: big\n"
        b"Message-ID: <big@customer.test>\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="B"\n\n--B\n'
        b"Content-Type: text/plain; charset=utf-8\n\nSee attached.\n--B\n"
        b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
        b'Content-Disposition: attachment; filename="' + name.encode() + b'"\n\n'
        + base64.encodebytes(data) + b"--B--\n"
    )


def test_an_attachment_over_the_limit_is_listed_but_not_loaded() -> None:
    data = os.urandom(3 * 1024 * 1024)  # generated here, not committed
    parsed = parse_email(_with_attachment(data), max_attachment_bytes=1024 * 1024)
    (att,) = parsed.attachments
    assert att.filename == "big.bin"
    assert not att.loaded and att.content is None
    assert att.size == len(data)
    assert att.sha256 == hashlib.sha256(data).hexdigest()
    assert any("not loaded" in d for d in parsed.defects)
    assert parsed.text == "See attached."


def test_an_attachment_within_the_limit_is_loaded_with_its_hash() -> None:
    data = os.urandom(200_000)
    (att,) = parse_email(_with_attachment(data, "report.bin")).attachments
    assert att.loaded and att.content == data
    assert att.size == len(data) and att.sha256 == hashlib.sha256(data).hexdigest()


def test_the_result_keeps_no_raw_source_and_is_immutable() -> None:
    parsed = parse_email(SAMPLES[0])
    names = {f.name for f in dataclasses.fields(ParsedEmail)}
    assert "raw" not in names and not hasattr(parsed, "raw")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.subject = "changed"  # type: ignore[misc]


def test_a_missing_message_id_is_synthesised_stably_from_the_bytes() -> None:
    raw = b"From: a@customer.test\nSubject: x\n\nHello\n"
    first, again = parse_email(raw), parse_email(raw)
    other = parse_email(raw + b"more\n")
    assert first.message_id_synthesized
    assert first.message_id == again.message_id != other.message_id
    assert first.message_id.endswith("@synthesized.frontdesk.invalid")


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n  ", b"\n\nonly a body, no header\n"])
def test_input_with_no_header_at_all_is_unparseable(raw: bytes) -> None:
    with pytest.raises(UnparseableEmail) as info:
        parse_email(raw)
    assert info.value.reason


def test_the_null_envelope_sender_marks_mail_automatic() -> None:
    raw = b"From: someone@x.test\nSubject: hi\n\nHello\n"
    assert parse_email(raw).automatic_kind is None
    assert parse_email(raw, envelope_sender="").automatic_kind == "auto-generated"
    assert parse_email(raw, envelope_sender="<>").should_auto_reply is False


def test_a_persons_mail_may_be_auto_answered_and_automatic_mail_may_not() -> None:
    person = parse_email(b"From: a@customer.test\nSubject: help\n\nHelp me\n")
    ooo = parse_email(b"From: a@customer.test\nSubject: Out of Office: help\n\nAway\n")
    assert person.should_auto_reply and not ooo.should_auto_reply


def test_thread_ids_list_in_reply_to_first_then_references_newest_first() -> None:
    raw = (b"From: a@customer.test\nSubject: Re\nIn-Reply-To: <c@x>\n"
           b"References: <a@x> <b@x> <c@x>\n\nHi\n")
    assert parse_email(raw).thread_ids == ("c@x", "b@x", "a@x")


def test_participants_are_from_reply_to_to_and_cc_once_each() -> None:
    raw = (b"From: Jane <jane@customer.test>\nReply-To: jane@customer.test\n"
           b"To: support@acme.test, Bob <BOB@customer.test>\nCc: bob@customer.test, "
           b"ops@customer.test\nSubject: x\n\nHi\n")
    assert [a.address for a in parse_email(raw).participants] == [
        "jane@customer.test", "support@acme.test", "BOB@customer.test", "ops@customer.test"]


def test_thread_hints_believe_only_tokens_we_signed() -> None:
    ours = make_message_id("acme.test", 42, SECRET)
    reply_to = make_reply_address("support@acme.test", 42, SECRET)
    raw = (f"From: jane@customer.test\nTo: {reply_to}\nSubject: Re: [#42] Printer\n"
           f"In-Reply-To: {ours}\nReferences: <fd.43.aaaaaaaa.aaaaaaaaaaaaaaaa@acme.test> "
           f"{ours}\n\nHi\n").encode()
    hints = thread_hints(parse_email(raw), secret=SECRET)
    assert hints.signed_conversation_ids == (42,)  # the forged 43 is ignored
    assert hints.reply_address_conversation_id == 42
    assert hints.subject_conversation_id == 42
    assert hints.best_signed == 42
    forged = thread_hints(parse_email(raw), secret="another-secret-0123456789")
    assert forged.signed_conversation_ids == () and forged.reply_address_conversation_id is None


def test_html_is_sanitised_and_cid_pictures_point_at_their_inline_part() -> None:
    raw = (b"From: a@customer.test\nSubject: x\nMIME-Version: 1.0\n"
           b'Content-Type: multipart/related; boundary="R"\n\n--R\n'
           b"Content-Type: text/html; charset=utf-8\n\n"
           b'<p onmouseover="x()">Hi<img src="cid:pic1" onerror="y()"></p>'
           b'<a href="javascript:z()">z</a><script>w()</script>\n--R\n'
           b"Content-Type: image/png\nContent-ID: <pic1>\nContent-Transfer-Encoding: base64\n\n"
           b"iVBORw0KGgo=\n--R--\n")
    parsed = parse_email(raw)
    html = parsed.html_sanitized or ""
    assert 'data-cid="pic1"' in html and "src=" not in html
    for bad in ("onmouseover", "onerror", "javascript", "<script", "w()"):
        assert bad not in html
    (pic,) = parsed.attachments
    assert pic.inline and pic.content_id == "pic1" and pic.content_type == "image/png"


def test_deeply_nested_multiparts_are_cut_with_a_defect_not_a_crash() -> None:
    raw = b"From: a@b.test\nSubject: deep\nContent-Type: multipart/mixed; boundary=B0\n\n"
    for i in range(1, 120):
        raw += b"--B%d\nContent-Type: multipart/mixed; boundary=B%d\n\n" % (i - 1, i)
    raw += b"--B119\nContent-Type: text/plain\n\ninner\n"
    parsed = parse_email(raw)
    assert any("levels" in d for d in parsed.defects)


# --- never raise anything but UnparseableEmail -----------------------------------------------


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [s for f in dataclasses.fields(value) for s in _strings(getattr(value, f.name))]
    if isinstance(value, tuple | list):
        return [s for v in value for s in _strings(v)]
    return []


def _parse_or_unparseable(raw: bytes) -> None:
    try:
        parsed = parse_email(raw, max_attachment_bytes=64 * 1024)
    except UnparseableEmail as exc:
        assert not exc.reason.startswith("internal"), exc.reason
        return
    assert isinstance(parsed, ParsedEmail)
    assert parsed.message_id
    if parsed.text.strip():
        assert parsed.new_text.strip()
    for text in _strings(parsed):  # everything can be stored in a database as it is
        assert "\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text)


def _mutate(raw: bytes, seed: int, ops: int) -> bytes:
    rnd = random.Random(seed)
    data = bytearray(raw)
    for _ in range(ops):
        if not data:
            break
        i = rnd.randrange(len(data))
        op = rnd.randrange(7)
        if op == 0:
            data[i] = rnd.randrange(256)
        elif op == 1:
            del data[i : i + rnd.randrange(1, 64)]
        elif op == 2:
            data[i:i] = rnd.choice([b"\r\n", b"\n\n", b"--", b"=?", b"?=", b"=", b"\x00",
                                    b"boundary=", b"; charset=x", b"\xff\xfe", b"=?utf-8?B?",
                                    b"Content-Type: multipart/mixed\n", b"<", b">", b"\""])
        elif op == 3:
            del data[i:]
        elif op == 4:
            j = rnd.randrange(len(data))
            data[i:i] = data[j : j + rnd.randrange(1, 200)]
        elif op == 5:
            data[i : i + 1] = bytes([rnd.randrange(0x80, 0x100)]) * rnd.randrange(1, 8)
        else:
            data = data.replace(b"\n", b"\r", 1) if rnd.random() < 0.5 else data.swapcase()
    return bytes(data)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(SAMPLES) - 1), seed=st.integers(0, 2**32), ops=st.integers(1, 12))
def test_mutated_corpus_messages_parse_or_raise_only_unparseable_email(
    index: int, seed: int, ops: int
) -> None:
    _parse_or_unparseable(_mutate(SAMPLES[index], seed, ops))


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=2000))
def test_random_bytes_parse_or_raise_only_unparseable_email(raw: bytes) -> None:
    _parse_or_unparseable(raw)


@settings(max_examples=200, deadline=None, database=None)
@given(
    headers=st.lists(
        st.tuples(
            st.sampled_from(["From", "To", "Cc", "Subject", "Date", "Message-ID", "References",
                             "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
                             "Auto-Submitted", "Reply-To", "In-Reply-To", "MIME-Version"]),
            st.binary(max_size=80),
        ),
        max_size=10,
    ),
    body=st.binary(max_size=500),
)
def test_random_header_values_parse_or_raise_only_unparseable_email(
    headers: list[tuple[str, bytes]], body: bytes
) -> None:
    raw = b"".join(n.encode() + b": " + v + b"\n" for n, v in headers) + b"\n" + body
    _parse_or_unparseable(raw)
