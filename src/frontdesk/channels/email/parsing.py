"""Raw RFC 5322 bytes → `ParsedEmail`: everything the rest of Frontdesk needs from a mail.

`parse_email` never raises on bad mail except with `UnparseableEmail` (empty input, no
header at all, or a failure of the parser itself): the caller quarantines such a mail
with its raw source and the reason. Everything else that is wrong with a mail — a broken
charset label, bad base64, a missing boundary, 8-bit headers, a missing Message-ID — is
repaired as well as it can be and listed in `defects`.

The result holds no raw source (the caller stores the raw bytes itself) and is immutable.
It is pure: no I/O, no clock, no database; the same bytes always give the same result.
"""

from __future__ import annotations

import contextlib
import email
import email.errors
import email.message
import email.policy
import email.utils
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import Message
from email.parser import HeaderParser
from io import BytesIO
from typing import Any

from frontdesk.channels.email.automatic import AutomaticKind, classify
from frontdesk.channels.email.bounces import (
    Bounce,
    BounceRecipient,
    looks_like_bounce,
    message_id_in_headers,
    parse_delivery_status,
    plain_text_bounce,
)
from frontdesk.channels.email.charsets import (
    decode_bytes,
    decode_header_text,
    html_meta_charset,
    resolve_charset,
    storable,
    to_raw_bytes,
)
from frontdesk.channels.email.forwards import MAX_FORWARDS, inline_forwards
from frontdesk.channels.email.headers import sanitize_filename
from frontdesk.channels.email.htmltext import html_to_text, sanitize_html
from frontdesk.channels.email.quotes import split_reply

DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
MAX_PARTS = 500
MAX_DEPTH = 30
MAX_TEXT_CHARS = 2_000_000
SYNTHETIC_ID_DOMAIN = "synthesized.frontdesk.invalid"


class UnparseableEmail(ValueError):
    """The bytes are not a mail that can be read at all; quarantine them with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EmailAddress:
    address: str  # as written, domain lower-cased; may lack "@" (e.g. "MAILER-DAEMON")
    name: str = ""

    def __str__(self) -> str:
        """As a header value: a non-ASCII name RFC 2047-encoded (for mail we write)."""
        return email.utils.formataddr((self.name, self.address)) if self.name else self.address

    @property
    def readable(self) -> str:
        """For people (stored To/Cc lists, the conversation view, the API): the name as
        written, any script, quoted only when it holds a character that would split the
        address list ("Lee, Ann" <ann@example.com>)."""
        if not self.name:
            return self.address
        name = self.name
        if any(c in name for c in ',;:<>@"()[]\\'):
            name = '"' + email.utils.quote(name) + '"'
        return f"{name} <{self.address}>"


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str  # safe for storage and download (headers.sanitize_filename)
    content_type: str  # as declared, lower-case; serve as a download, never inline HTML
    size: int  # decoded bytes
    sha256: str  # hex digest of the decoded bytes
    content: bytes | None  # None when over the size limit
    inline: bool = False  # an inline part (a picture the HTML shows)
    content_id: str | None = None  # without angle brackets, for `data-cid` in the HTML
    original_filename: str | None = None  # the decoded name the sender gave, for display

    @property
    def loaded(self) -> bool:
        return self.content is not None


@dataclass(frozen=True, slots=True)
class ForwardedMail:
    """Who wrote a mail the sender forwarded (inline under a client's forward separator, or
    attached as message/rfc822): for the agent to see; never a participant."""

    sender: str  # "Name <address>", or the address
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str = ""
    date: str = ""  # as written (a forwarded block's date is free text)

    def as_json(self) -> dict[str, Any]:
        return {"from": self.sender, "to": list(self.to), "cc": list(self.cc),
                "subject": self.subject, "date": self.date}


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    message_id: str  # without angle brackets; synthesised when missing (see below)
    subject: str
    from_: EmailAddress | None
    text: str  # the full plain text (HTML-only mail: text derived from the HTML)
    new_text: str  # what the sender wrote this time, without history and signature
    message_id_synthesized: bool = False
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    to: tuple[EmailAddress, ...] = ()
    cc: tuple[EmailAddress, ...] = ()
    reply_to: tuple[EmailAddress, ...] = ()
    delivered_to: tuple[str, ...] = ()  # Delivered-To / X-Original-To / Envelope-To
    date: datetime | None = None  # aware, UTC
    html_sanitized: str | None = None  # None for plain-text mail; cid: pictures as data-cid
    quoted_text: str = ""  # the history and signature cut from new_text (shown folded)
    attachments: tuple[Attachment, ...] = ()
    is_automatic: bool = False
    automatic_kind: AutomaticKind | None = None
    automatic_reason: str | None = None
    automatic_reasons: tuple[str, ...] = ()
    suppress_auto_reply: bool = False  # automatic, or the sender asked for no auto-reply
    is_bounce: bool = False  # a delivery failure report (bounce.failed)
    bounce: Bounce | None = None  # any delivery status notification, failed or not
    is_calendar: bool = False
    calendar_method: str | None = None  # REQUEST, CANCEL, REPLY...
    list_id: str | None = None
    defects: tuple[str, ...] = ()
    size: int = 0  # of the raw message, bytes
    forwarded: tuple[ForwardedMail, ...] = ()  # mails forwarded in it, who wrote them

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this mail answers, most specific first (In-Reply-To, then
        References from the newest back): what the caller looks up to thread it."""
        seen: list[str] = []
        for mid in ([self.in_reply_to] if self.in_reply_to else []) + list(
            reversed(self.references)
        ):
            if mid not in seen:
                seen.append(mid)
        return tuple(seen)

    @property
    def participants(self) -> tuple[EmailAddress, ...]:
        """From, Reply-To, To and Cc without repeats: who a reply-all goes to."""
        seen: dict[str, EmailAddress] = {}
        for a in ([self.from_] if self.from_ else []) + [*self.reply_to, *self.to, *self.cc]:
            seen.setdefault(a.address.lower(), a)
        return tuple(seen.values())

    @property
    def should_auto_reply(self) -> bool:
        """Whether an automatic answer (an acknowledgement) may be sent at all."""
        return not (self.is_automatic or self.suppress_auto_reply or self.from_ is None)


# --- the walk ---------------------------------------------------------------------------------


@dataclass
class _Segment:
    plain: str | None = None
    html: str | None = None


@dataclass
class _Walk:
    max_attachment_bytes: int
    hints: list[str]
    segments: list[_Segment] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    parts: int = 0
    truncated: bool = False
    calendar_method: str | None = None
    is_calendar: bool = False
    dsn_text: str | None = None
    is_mdn: bool = False
    original_message_id: str | None = None
    forwarded: list[ForwardedMail] = field(default_factory=list)

    def child(self) -> _Walk:
        sub = _Walk(self.max_attachment_bytes, self.hints)
        sub.parts = self.parts
        return sub

    def absorb(self, sub: _Walk) -> None:
        self.attachments.extend(sub.attachments)
        self.defects.extend(sub.defects)
        self.parts = sub.parts
        self.truncated = self.truncated or sub.truncated
        self.is_calendar = self.is_calendar or sub.is_calendar
        self.calendar_method = self.calendar_method or sub.calendar_method
        self.dsn_text = self.dsn_text or sub.dsn_text
        self.is_mdn = self.is_mdn or sub.is_mdn
        self.original_message_id = self.original_message_id or sub.original_message_id
        self.forwarded.extend(sub.forwarded)


def _defect_name(defect: object) -> str:
    name = type(defect).__name__.removesuffix("Defect")
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()
    return words or "defect"


_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,128}")


def _ctype(part: Message) -> str:
    try:
        ctype = part.get_content_type().lower()
    except Exception:
        return "application/octet-stream"
    return ctype if _MIME_TYPE.fullmatch(ctype) else "application/octet-stream"


def _param(part: Message, name: str, header: str = "content-type") -> str | None:
    try:
        value = part.get_param(name, header=header)
    except Exception:
        return None
    if value is None:
        return None
    if isinstance(value, tuple):
        value = email.utils.collapse_rfc2231_value(value)
    return str(value)


def _disposition(part: Message) -> str | None:
    try:
        value = part.get_content_disposition()
    except Exception:
        return None
    return value.lower() if value else None


def _raw_param(part: Message, header: str, param: str) -> str | None:
    """A parameter straight from the raw header: for 8-bit values the modern parser has
    already turned into U+FFFD."""
    raw = re.sub(r"\r?\n[ \t]*", " ", _raw_header(part, header))
    m = re.search(rf'(?:^|;)\s*{param}\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))', raw, re.I)
    if m is None:
        return None
    return m.group(1) if m.group(1) is not None else m.group(2)


def _filename(part: Message, w: _Walk) -> str | None:
    name: str | None = None
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        name = _param(part, "name")
    if name and "\ufffd" in name:
        name = _raw_param(part, "content-disposition", "filename") or _raw_param(
            part, "content-type", "name") or name
    if not name:
        return None
    decoded, defects = decode_header_text(name, hints=w.hints, name="attachment name")
    w.defects.extend(defects)
    return decoded or None


def _payload_bytes(part: Message, w: _Walk) -> bytes:
    known = len(part.defects)
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:
        w.defects.append(f"undecodable part body ({type(exc).__name__})")
        data = None
    w.defects.extend(_defect_name(d) for d in part.defects[known:])
    if isinstance(data, bytes):
        return data
    try:
        raw = part.get_payload()
    except Exception:
        return b""
    if isinstance(raw, str):
        return to_raw_bytes(raw)
    return b""


def _message_bytes(msg: Message) -> bytes:
    buf = BytesIO()
    try:
        BytesGenerator(buf, mangle_from_=False, policy=email.policy.compat32).flatten(msg)
    except Exception:
        return b""
    return buf.getvalue()


def _content_id(part: Message) -> str | None:
    raw = storable(re.sub(r"\s+", " ", _raw_header(part, "content-id"))).strip()
    if not raw:
        return None
    m = re.search(r"<([^<>]+)>", raw)
    cid = (m.group(1) if m else raw).strip()
    return cid[:250] or None


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676 format=flowed to plain lines."""
    out: list[str] = []
    buf = ""
    buf_depth = -1
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        soft = content.endswith(" ") and content != "-- "
        if buf_depth == depth and buf:
            buf += content
        else:
            if buf_depth >= 0:
                out.append(("> " * buf_depth) + buf)
            buf = content
            buf_depth = depth
        if soft:
            if delsp:
                buf = buf[:-1]
            continue
        out.append(("> " * depth) + buf)
        buf = ""
        buf_depth = -1
    if buf_depth >= 0:
        out.append(("> " * buf_depth) + buf)
    return "\n".join(out)


def _text_of(part: Message, w: _Walk, ctype: str) -> str:
    payload = _payload_bytes(part, w)
    declared = _param(part, "charset")
    if ctype == "text/html" and not declared:
        declared = html_meta_charset(payload)
    decoded = decode_bytes(payload, declared, hints=w.hints, what=ctype)
    if decoded.defect:
        w.defects.append(decoded.defect)
    text = storable(decoded.text).replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > MAX_TEXT_CHARS:
        w.defects.append(f"{ctype} part cut to {MAX_TEXT_CHARS} characters")
        text = text[:MAX_TEXT_CHARS]
    if ctype == "text/plain" and (_param(part, "format") or "").lower() == "flowed":
        text = _unflow(text, (_param(part, "delsp") or "").lower() == "yes")
    return text


def _attach(
    w: _Walk, part: Message, ctype: str, data: bytes, *, default_name: str,
    inline: bool = False, name: str | None = None,
) -> None:
    original = name if name is not None else _filename(part, w)
    size = len(data)
    content: bytes | None = data
    if size > w.max_attachment_bytes:
        content = None
        w.defects.append(
            f"attachment {sanitize_filename(original, default=default_name)!r} not loaded: "
            f"{size} bytes is over the limit of {w.max_attachment_bytes}"
        )
    w.attachments.append(Attachment(
        filename=sanitize_filename(original, default=default_name),
        content_type=ctype,
        size=size,
        sha256=hashlib.sha256(data).hexdigest(),
        content=content,
        inline=inline,
        content_id=_content_id(part),
        original_filename=original,
    ))


_EXTENSIONS = {
    "text/plain": "txt", "text/html": "html", "text/calendar": "ics", "text/csv": "csv",
    "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
    "application/pdf": "pdf", "message/rfc822": "eml", "application/zip": "zip",
    "message/delivery-status": "txt", "text/rfc822-headers": "txt",
    "application/pgp-signature": "asc", "application/pkcs7-signature": "p7s",
}


def _default_name(ctype: str, stem: str = "attachment") -> str:
    ext = _EXTENSIONS.get(ctype)
    return f"{stem}.{ext}" if ext else stem


def _children(part: Message) -> list[Message]:
    try:
        payload = part.get_payload()
    except Exception:
        return []
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    return []


def _walk(part: Message, w: _Walk, depth: int) -> None:
    if w.parts >= MAX_PARTS or depth > MAX_DEPTH:
        if not w.truncated:
            w.defects.append(f"more than {MAX_PARTS} parts or {MAX_DEPTH} levels; rest ignored")
        w.truncated = True
        return
    w.parts += 1
    w.defects.extend(_defect_name(d) for d in getattr(part, "defects", ()))
    ctype = _ctype(part)
    main = ctype.split("/", 1)[0]
    children = _children(part)

    if main == "multipart" or (part.is_multipart() and main != "message"):
        if not children:
            if main == "multipart":
                body = _payload_bytes(part, w)
                if body.strip():
                    w.defects.append("multipart without parts; read as text")
                    dec = decode_bytes(body, None, hints=w.hints, what="multipart body")
                    w.segments.append(_Segment(plain=dec.text.replace("\r\n", "\n")))
            return
        sub = ctype.split("/", 1)[1]
        if sub == "alternative":
            _alternative(children, w, depth)
        elif sub == "related":
            _related(part, children, w, depth)
        elif sub == "signed":
            _walk(children[0], w, depth + 1)
            for c in children[1:]:
                _leaf_attachment(c, w, "signature")
        elif sub == "encrypted":
            for c in children:
                _leaf_attachment(c, w, "encrypted")
        elif sub == "report":
            _report(part, children, w, depth)
        else:
            for c in children:
                _walk(c, w, depth + 1)
        return

    if ctype in ("message/rfc822", "message/global"):
        inner = children[0] if children else None
        data = _message_bytes(inner) if inner is not None else _payload_bytes(part, w)
        subject = ""
        if inner is not None:
            subject, _ = decode_header_text(_raw_header(inner, "subject"), hints=w.hints)
            forwarded = _forwarded_mail(
                {name: _raw_header(inner, name) for name in ("from", "to", "cc", "date")}
                | {"subject": subject}, w.hints, decoded=False)
            if forwarded is not None:
                w.forwarded.append(forwarded)
            subject = sanitize_filename(subject, default="", max_length=80)
        _attach(w, part, "message/rfc822", data,
                default_name=(subject[:80] or "forwarded-message") + ".eml")
        return
    if main == "message" or part.is_multipart():
        # message/delivery-status outside a report, message/partial, external-body...
        text = "\n\n".join(_block_text(c) for c in children) or _payload_bytes(part, w).decode(
            "utf-8", "replace")
        _attach(w, part, ctype, to_raw_bytes(text), default_name=_default_name(ctype, "part"))
        return

    disposition = _disposition(part)
    name = _filename(part, w)
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not name:
        text = _text_of(part, w, ctype)
        w.segments.append(_Segment(plain=text) if ctype == "text/plain" else _Segment(html=text))
        return
    if ctype == "text/calendar" or (name or "").lower().endswith(".ics"):
        w.is_calendar = True
        data = _payload_bytes(part, w)
        method = _param(part, "method")
        if not method:
            m = re.search(rb"^METHOD:\s*([A-Za-z-]{1,20})", data, re.MULTILINE)
            method = m.group(1).decode("ascii") if m else None
        w.calendar_method = w.calendar_method or (method.upper() if method else None)
        _attach(w, part, "text/calendar", data, default_name="invite.ics", name=name)
        return
    data = _payload_bytes(part, w)
    inline = disposition == "inline" or (disposition is None and _content_id(part) is not None
                                         and main == "image")
    _attach(w, part, ctype, data, default_name=_default_name(ctype), inline=inline, name=name)


def _leaf_attachment(part: Message, w: _Walk, stem: str) -> None:
    ctype = _ctype(part)
    data = _message_bytes(part) if part.is_multipart() else _payload_bytes(part, w)
    _attach(w, part, ctype, data, default_name=_default_name(ctype, stem))


def _alternative(children: list[Message], w: _Walk, depth: int) -> None:
    plain: str | None = None
    html_text: str | None = None
    for c in children:
        sub = w.child()
        _walk(c, sub, depth + 1)
        w.absorb(sub)
        plains = [s.plain for s in sub.segments if s.plain is not None]
        htmls = [s.html for s in sub.segments if s.html is not None]
        if plains and not htmls:
            plain = "\n\n".join(plains)
        if htmls:
            html_text = "\n".join(
                s.html if s.html is not None else _plain_as_html(s.plain or "")
                for s in sub.segments
            )
    if plain is not None or html_text is not None:
        w.segments.append(_Segment(plain=plain, html=html_text))


def _related(part: Message, children: list[Message], w: _Walk, depth: int) -> None:
    start = _param(part, "start")
    root_index = 0
    if start:
        wanted = start.strip().strip("<>")
        for i, c in enumerate(children):
            if _content_id(c) == wanted:
                root_index = i
                break
    _walk(children[root_index], w, depth + 1)
    for i, c in enumerate(children):
        if i == root_index:
            continue
        if c.is_multipart():
            _walk(c, w, depth + 1)
            continue
        ctype = _ctype(c)
        w.parts += 1
        _attach(w, c, ctype, _payload_bytes(c, w), default_name=_default_name(ctype, "inline"),
                inline=_content_id(c) is not None or _disposition(c) == "inline")


def _block_text(block: Message) -> str:
    return "\n".join(f"{k}: {v}" for k, v in block.raw_items())


def _report(part: Message, children: list[Message], w: _Walk, depth: int) -> None:
    report_type = (_param(part, "report-type") or "").lower()
    _walk(children[0], w, depth + 1)
    for c in children[1:]:
        ctype = _ctype(c)
        w.parts += 1
        if ctype in ("message/delivery-status", "message/global-delivery-status",
                     "text/delivery-status"):
            blocks = _children(c)
            text = (
                "\n\n".join(_block_text(b) for b in blocks)
                if blocks
                else _payload_bytes(c, w).decode("utf-8", "replace")
            )
            w.dsn_text = storable(text)
            _attach(w, c, "message/delivery-status", to_raw_bytes(text),
                    default_name="delivery-status.txt")
        elif ctype in ("message/disposition-notification",
                       "message/global-disposition-notification"):
            w.is_mdn = True
            blocks = _children(c)
            text = "\n\n".join(_block_text(b) for b in blocks) if blocks else (
                _payload_bytes(c, w).decode("utf-8", "replace"))
            _attach(w, c, ctype, to_raw_bytes(text), default_name="disposition-notification.txt")
        elif ctype in ("message/rfc822", "message/global"):
            inner = _children(c)
            if inner:
                w.original_message_id = w.original_message_id or _first_id(
                    _raw_header(inner[0], "message-id"))
                data = _message_bytes(inner[0])
            else:
                data = _payload_bytes(c, w)
                w.original_message_id = w.original_message_id or message_id_in_headers(
                    data.decode("utf-8", "replace"))
            _attach(w, c, "message/rfc822", data, default_name="original-message.eml")
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers",
                       "message/global-headers"):
            data = _payload_bytes(c, w)
            text = data.decode("utf-8", "replace")
            try:
                headers = HeaderParser(policy=email.policy.compat32).parsestr(text)
                mid = _first_id(_raw_header(headers, "message-id"))
            except Exception:
                mid = None
            w.original_message_id = w.original_message_id or mid or message_id_in_headers(text)
            _attach(w, c, "text/rfc822-headers", data, default_name="original-headers.txt")
        else:
            _walk(c, w, depth + 1)
    if report_type == "delivery-status" and w.dsn_text is None:
        w.dsn_text = ""


def _plain_as_html(text: str) -> str:
    return f'<div style="white-space: pre-wrap">{html.escape(text)}</div>'


# --- headers ---------------------------------------------------------------------------------


def _forwarded_mail(fields: dict[str, str], hints: list[str], *,
                    decoded: bool) -> ForwardedMail | None:
    """A forwarded mail's people from its From/To/Cc/Subject/Date values (raw header
    values of an attached mail, or the text of an inline block: `decoded`); None without a
    readable From."""
    def people(name: str) -> tuple[str, ...]:
        # Readable, for the agent: not RFC 2047 words as formataddr writes a non-ASCII name.
        return tuple(f"{a.name} <{a.address}>" if a.name else a.address
                     for a in _addresses([fields.get(name) or ""], hints, name, []))

    senders = people("from")
    if not senders:
        return None
    subject, date = fields.get("subject") or "", fields.get("date") or ""
    if not decoded:
        date, _ = decode_header_text(date, hints=hints)
    return ForwardedMail(sender=senders[0], to=people("to")[:50], cc=people("cc")[:50],
                         subject=storable(" ".join(subject.split()))[:998],
                         date=storable(" ".join(date.split()))[:200])


def _raw_header(msg: Message, name: str) -> str:
    """The first raw value of a header (surrogate-escaped 8-bit kept), '' when absent."""
    for key, value in msg.raw_items():
        if key.lower() == name:
            return str(value)
    return ""


def _raw_headers(msg: Message) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in msg.raw_items():
        out.setdefault(key.strip().lower(), []).append(str(value))
    return out


_ID = re.compile(r"<([^<>\s]{1,500})>")


def _ids(value: str) -> list[str]:
    value = re.sub(r"\r?\n[ \t]*", " ", value)
    found = _ID.findall(value)
    if not found:
        found = [t.strip("<>,;") for t in value.split() if "@" in t]
    clean: list[str] = []
    for mid in found:
        mid = mid.strip()
        if mid and mid.isascii() and mid.isprintable() and mid not in clean and len(mid) <= 500:
            clean.append(mid)
    return clean


def _first_id(value: str) -> str | None:
    ids = _ids(value)
    return ids[0] if ids else None


_ADDR_FALLBACK = re.compile(r"[^\s<>(),;:\"']+@[^\s<>(),;:\"']+")


def _addresses(values: list[str], hints: list[str], name: str,
               defects: list[str]) -> tuple[EmailAddress, ...]:
    out: list[EmailAddress] = []
    for raw in values:
        unfolded = re.sub(r"\r?\n[ \t]*", " ", raw).strip()
        if not unfolded:
            continue
        try:
            pairs = email.utils.getaddresses([unfolded])
        except Exception:
            pairs = []
        good = [(n, a) for n, a in pairs if a]
        if not good and "@" in unfolded:
            defects.append(f"{name}: unreadable address list")
            good = [("", a) for a in _ADDR_FALLBACK.findall(unfolded)]
        for display, addr in good:
            addr_text = to_raw_bytes(addr).decode("utf-8", "replace")
            addr_text = re.sub(r"[\x00-\x1f\x7f]", "", addr_text).strip().strip("<>")
            if not addr_text or len(addr_text) > 320 or any(c.isspace() for c in addr_text):
                continue
            local, at, domain = addr_text.rpartition("@")
            if at:
                addr_text = f"{local}@{domain.lower()}"
            label, d = decode_header_text(display, hints=hints, name=name)
            defects.extend(d)
            if label.strip("'\" ") == addr_text:
                label = ""
            out.append(EmailAddress(address=addr_text, name=label.strip("'\" ")[:200]))
    unique: dict[str, EmailAddress] = {}
    for a in out:
        unique.setdefault(a.address.lower(), a)
    return tuple(unique.values())[:500]


def _date(value: str, defects: list[str]) -> datetime | None:
    if not value.strip():
        defects.append("missing Date")
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(re.sub(r"\s+", " ", value.strip()))
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append(f"unreadable Date {value.strip()[:60]!r}")
        return None
    if parsed is None:
        defects.append(f"unreadable Date {value.strip()[:60]!r}")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        defects.append(f"unreadable Date {value.strip()[:60]!r}")
        return None


def _charset_hints(msg: Message, subject_raw: str) -> list[str]:
    hints: list[str] = []
    for m in re.finditer(r"=\?([^?\s*]{1,40})", subject_raw):
        hints.append(m.group(1))
    with contextlib.suppress(Exception):  # hints are a nicety; a strange tree has none
        for i, part in enumerate(msg.walk()):
            if i > 50:
                break
            cs = _param(part, "charset")
            if cs:
                hints.append(cs)
    out: list[str] = []
    for h in hints:
        codec = resolve_charset(h)
        if codec and codec not in ("ascii", "utf-8", "cp1252") and codec not in out:
            out.append(codec)
    return out


# --- the whole message -----------------------------------------------------------------------


def _repair_missing_boundary(raw: bytes, msg: Message) -> Message | None:
    """A multipart whose Content-Type lost its boundary: find it in the body and reparse."""
    if _ctype(msg).split("/", 1)[0] != "multipart" or msg.is_multipart():
        return None
    try:
        body = msg.get_payload()
    except Exception:
        return None
    if not isinstance(body, str):
        return None
    m = re.search(r"^--([0-9A-Za-z'()+_,./:=?-]{1,70})[ \t]*$", body, re.MULTILINE)
    if m is None:
        return None
    boundary = m.group(1).removesuffix("--")
    head_end = re.search(rb"\r?\n\r?\n", raw)
    if head_end is None:
        return None
    head = raw[: head_end.start()]
    head = re.sub(rb"(?im)^content-type:.*(?:\r?\n[ \t].*)*", b"", head).strip(b"\r\n")
    subtype = _ctype(msg).split("/", 1)[1]
    fixed = (head + f'\r\nContent-Type: multipart/{subtype}; boundary="{boundary}"'.encode()
             + raw[head_end.start():])
    repaired = email.message_from_bytes(fixed, policy=msg.policy)
    return repaired if repaired.is_multipart() else None


class _HeaderFactory(HeaderRegistry):
    """The modern policy's header factory, remembering what it made for one message.

    The stock registry builds a new class and re-parses the value on every access, and the
    e-mail package reads Content-Type many times per part; header objects are immutable,
    so one parse per distinct (name, value) is enough. One factory per parse: nothing is
    kept between messages."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}
        self._made: dict[tuple[str, str], BaseHeader] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls

    def __call__(self, name: str, value: str) -> BaseHeader:
        key = (name, value)
        made = self._made.get(key)
        if made is None:
            if len(self._made) > 10_000:
                self._made.clear()
            made = self._made[key] = super().__call__(name, value)
        return made


def parse_email(
    raw: bytes,
    *,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    envelope_sender: str | None = None,
) -> ParsedEmail:
    """Read one raw mail. `envelope_sender` is the SMTP MAIL FROM when known ("" for the
    null sender `<>`, which marks automatic mail); None when unknown (IMAP)."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise UnparseableEmail("not bytes")
    raw = bytes(raw)
    if not raw.strip():
        raise UnparseableEmail("empty message")
    try:
        return _parse(raw, max_attachment_bytes, envelope_sender)
    except UnparseableEmail:
        raise
    except RecursionError as exc:
        raise UnparseableEmail("MIME structure nested too deeply") from exc
    except Exception as exc:  # the last line: a mail must be quarantined, never crash intake
        raise UnparseableEmail(f"internal parser error: {type(exc).__name__}: {exc}") from exc


def _parse(raw: bytes, max_attachment_bytes: int, envelope_sender: str | None) -> ParsedEmail:
    defects: list[str] = []
    policy = email.policy.default.clone(header_factory=_HeaderFactory())
    msg: Message = email.message_from_bytes(raw, policy=policy)
    if not list(msg.raw_items()):
        raise UnparseableEmail("no header fields: this is not an e-mail message")
    repaired = _repair_missing_boundary(raw, msg)
    if repaired is not None:
        defects.append("multipart boundary missing from Content-Type; found in the body")
        msg = repaired

    headers = _raw_headers(msg)

    def one(name: str) -> str:
        values = headers.get(name)
        return values[0] if values else ""

    subject_raw = one("subject")
    hints = _charset_hints(msg, subject_raw)
    subject, d = decode_header_text(subject_raw, hints=hints, name="Subject")
    defects.extend(d)
    subject = subject[:1000]

    from_list = _addresses(headers.get("from", []), hints, "From", defects)
    if not from_list:
        sender_list = _addresses(headers.get("sender", []), hints, "Sender", defects)
        from_list = sender_list
        defects.append("missing From" if not sender_list else "missing From; used Sender")
    from_ = from_list[0] if from_list else None
    to = _addresses(headers.get("to", []), hints, "To", defects)
    cc = _addresses(headers.get("cc", []), hints, "Cc", defects)
    reply_to = _addresses(headers.get("reply-to", []), hints, "Reply-To", defects)
    delivered: list[str] = []
    for name in ("delivered-to", "x-original-to", "envelope-to"):
        for v in headers.get(name, []):
            for a in _addresses([v], hints, name, []):
                if a.address not in delivered:
                    delivered.append(a.address)

    message_id = _first_id(one("message-id"))
    synthesized = message_id is None
    if message_id is None:
        defects.append("missing Message-ID" if not one("message-id").strip()
                       else "unreadable Message-ID")
        message_id = f"{hashlib.sha256(raw).hexdigest()[:40]}@{SYNTHETIC_ID_DOMAIN}"
    in_reply_to = _first_id(one("in-reply-to"))
    references = tuple(_ids(" ".join(headers.get("references", []))))[-100:]
    date = _date(one("date"), defects)

    if "content-type" not in headers and "mime-version" not in headers:
        defects.append("no MIME headers; read as plain text")
    elif "content-type" not in headers:
        defects.append("missing Content-Type; read as plain text")

    w = _Walk(max_attachment_bytes, hints)
    _walk(msg, w, 0)
    defects.extend(w.defects)

    # The body: plain text where the sender wrote it, else derived from the HTML.
    texts: list[str] = []
    htmls: list[str] = []
    for seg in w.segments:
        if seg.plain is not None:
            texts.append(seg.plain)
        elif seg.html is not None:
            texts.append(html_to_text(seg.html))
    if any(seg.html is not None for seg in w.segments):
        for seg in w.segments:
            htmls.append(seg.html if seg.html is not None else _plain_as_html(seg.plain or ""))
    text = "\n\n".join(t.strip("\n") for t in texts if t.strip()).strip()
    raw_html = "\n".join(htmls) if htmls else None
    html_sanitized = sanitize_html(raw_html) if raw_html is not None else None
    new_text, quoted = split_reply(text, raw_html)
    forwarded = [found for found in (_forwarded_mail(block, hints, decoded=True)
                                     for block in inline_forwards(text)) if found is not None]
    forwarded = (forwarded + w.forwarded)[:MAX_FORWARDS]

    # Bounces and automatic mail.
    bounce: Bounce | None = None
    sender = from_.address if from_ else ""
    if w.dsn_text is not None:
        reporting, recipients = parse_delivery_status(w.dsn_text)
        bounce = Bounce(tuple(recipients), w.original_message_id, reporting, standard=True)
    elif looks_like_bounce(sender, from_.name if from_ else "", subject):
        bounce = plain_text_bounce(text)
        if bounce.original_message_id is None and w.original_message_id:
            bounce = Bounce(bounce.recipients, w.original_message_id, None, standard=False)
    decoded_headers = {
        name: [decode_header_text(v, hints=hints)[0] for v in values[:5]]
        for name, values in headers.items()
        if name in ("auto-submitted", "precedence", "x-autoreply", "x-autorespond",
                    "x-autoresponder", "x-auto-reply", "x-autogenerated", "list-id",
                    "list-post", "list-unsubscribe", "x-auto-response-suppress", "return-path")
    }
    if envelope_sender is not None and envelope_sender.strip() in ("", "<>"):
        decoded_headers["return-path"] = ["<>"]
    verdict = classify(decoded_headers, subject=subject, sender=sender,
                       is_dsn=bounce is not None, is_mdn=w.is_mdn)
    list_id = None
    if decoded_headers.get("list-id"):
        list_id = decoded_headers["list-id"][0][:300]

    return ParsedEmail(
        message_id=message_id,
        message_id_synthesized=synthesized,
        in_reply_to=in_reply_to,
        references=references,
        subject=subject,
        from_=from_,
        to=to,
        cc=cc,
        reply_to=reply_to,
        delivered_to=tuple(delivered),
        date=date,
        text=text,
        html_sanitized=html_sanitized,
        new_text=new_text,
        quoted_text=quoted,
        attachments=tuple(w.attachments),
        is_automatic=verdict.kind is not None,
        automatic_kind=verdict.kind,
        automatic_reason=verdict.reason,
        automatic_reasons=verdict.reasons,
        suppress_auto_reply=verdict.suppress_auto_reply,
        is_bounce=bounce is not None and bounce.failed,
        bounce=bounce,
        is_calendar=w.is_calendar,
        calendar_method=w.calendar_method,
        list_id=list_id,
        defects=tuple(dict.fromkeys(storable(d)[:500] for d in defects))[:200],
        size=len(raw),
        forwarded=tuple(forwarded),
    )


__all__ = [
    "DEFAULT_MAX_ATTACHMENT_BYTES",
    "Attachment",
    "Bounce",
    "BounceRecipient",
    "EmailAddress",
    "ForwardedMail",
    "ParsedEmail",
    "UnparseableEmail",
    "parse_email",
]
