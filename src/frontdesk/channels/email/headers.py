"""Pure helpers for what we write into mail and onto disk.

- `safe_header_value`: a value for an outbound header, refused if it could start a new
  header line (header injection).
- `one_line`: decoded header text (a display name, a subject) made one line: what a
  sender encoded can decode to anything, line breaks included.
- `sanitize_filename`: an attachment name that cannot leave the storage folder or hide
  what it is.
- Signed thread tokens: our outbound `Message-ID`s and plus-addressed reply addresses
  carry an HMAC of the conversation id, so a reply that *references* a conversation is
  only believed when we issued that reference. Without it, anyone who guesses a number
  could attach their mail to (and then read the replies of) a stranger's conversation.
  Tokens are lower-case base32 (MTAs may lower-case local parts), 80-bit MACs, verified
  in constant time; each kind of token has its own MAC domain so one cannot be replayed
  as another.
- `subject_token` / `parse_subject_token`: the human-visible "[#123]". Not signed: the
  caller must only use it together with a participant check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import unicodedata

# Characters that Python's str.splitlines (and so the e-mail package) treats as line
# breaks, plus NUL: any of them in a header value could end the header early.
_LINE_BREAKS = frozenset("\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def safe_header_value(value: str) -> str:
    """`value` unchanged, or ValueError when it contains CR, LF or another line break."""
    if not isinstance(value, str):
        raise TypeError("a header value must be a str")
    bad = _LINE_BREAKS.intersection(value)
    if bad:
        names = ", ".join(sorted(f"U+{ord(c):04X}" for c in bad))
        raise ValueError(f"header value contains a line break ({names})")
    return value


# C0 and C1 controls (CR, LF, NUL, tab, NEL...) and the Unicode line and paragraph
# separators: a superset of _LINE_BREAKS.
_NOT_ONE_LINE = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_BREAKING_RUN = re.compile(f" *[{_NOT_ONE_LINE}][{_NOT_ONE_LINE} ]*")


def one_line(text: str) -> str:
    """`text` with every control character or line separator replaced by a space, runs of
    them (and the spaces around them) collapsed into one, and no space at either end.

    For text decoded from a header (an RFC 2047 word may carry "Evil\r\nBcc: x"): kept
    as it is, it would be refused by `safe_header_value` wherever it is written again,
    e.g. a participant's name in the Cc of every later reply."""
    return _BREAKING_RUN.sub(" ", text).strip(" ")


# --- file names ----------------------------------------------------------------------------

# Characters that look like a slash or backslash: treated as path separators.
_SLASHES = "/\\\u2215\u2044\uff0f\u29f8\u29f5\u29f9\ufe68\uff3c\u2216\u27cb\u27cd\u3033"
_WINDOWS_FORBIDDEN = '<>:"|?*'
_WINDOWS_RESERVED = re.compile(r"^(?:con|prn|aux|nul|com\d|lpt\d|conin\$|conout\$)(?:\.|$)", re.I)
MAX_FILENAME_LENGTH = 150


def _invisible(ch: str) -> bool:
    # Cc: control; Cf: format (zero-width, bidi overrides U+202E, BOM); Zl/Zp: line and
    # paragraph separators; Co/Cn/Cs: private use, unassigned, surrogates.
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs")


def sanitize_filename(
    name: str | None, *, default: str = "attachment", max_length: int = MAX_FILENAME_LENGTH
) -> str:
    """A file name safe to store and to offer for download.

    NFKC-normalised; invisible characters (zero-width, bidi controls) removed; every
    slash-like character is a path separator and only the last component is kept; no
    leading dots (no "..", no hidden files), no drive letters or Windows-forbidden
    characters, no reserved device names; whitespace collapsed; at most `max_length`
    characters with the extension kept; never empty (`default`).
    """
    text = unicodedata.normalize("NFKC", name or "")
    text = "".join(ch for ch in text if not _invisible(ch) or ch in "\t\n\r")
    for slash in _SLASHES:
        text = text.replace(slash, "/")
    text = text.split("/")[-1]
    text = "".join("_" if ch in _WINDOWS_FORBIDDEN else ch for ch in text)
    text = re.sub(r"\s+", " ", text).strip()
    text = text.lstrip(". ").rstrip(". ")
    if _WINDOWS_RESERVED.match(text):
        text = "_" + text
    if len(text) > max_length:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 16 and stem:
            text = stem[: max_length - len(ext) - 1].rstrip(". ") + "." + ext
        else:
            text = text[:max_length].rstrip(". ")
    if not text.strip("._ -"):
        fallback = sanitize_filename(default, default="attachment") if default != name else ""
        return fallback or "attachment"
    return text


# --- signed thread tokens --------------------------------------------------------------------

_MAC_BYTES = 10  # 80 bits: 16 base32 characters


def _key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < 16:
        raise ValueError("the signing secret must be at least 16 bytes")
    return key


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _mac(secret: str | bytes, purpose: str, *parts: str) -> str:
    message = "\x1f".join((purpose, *parts)).encode("utf-8")
    return _b32(hmac.new(_key(secret), message, hashlib.sha256).digest()[:_MAC_BYTES])


def _check_id(conversation_id: int) -> str:
    if isinstance(conversation_id, bool) or not isinstance(conversation_id, int):
        raise TypeError("conversation_id must be an int")
    if conversation_id < 0:
        raise ValueError("conversation_id must not be negative")
    return str(conversation_id)


def _check_domain(domain: str) -> str:
    domain = safe_header_value(domain).strip().lower()
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?", domain):
        raise ValueError(f"not a domain name: {domain!r}")
    return domain


_MESSAGE_ID = re.compile(r"<?fd\.(\d{1,19})\.([a-z2-7]{8,32})\.([a-z2-7]{16})@([^<>\s@]+)>?")


def make_message_id(
    domain: str, conversation_id: int, secret: str | bytes, *, nonce: str | None = None
) -> str:
    """A new, unique `Message-ID` header value (with angle brackets) for an outbound
    message of `conversation_id`: `<fd.<id>.<nonce>.<mac>@<domain>>`."""
    cid = _check_id(conversation_id)
    domain = _check_domain(domain)
    nonce = nonce if nonce is not None else _b32(os.urandom(10))
    if not re.fullmatch(r"[a-z2-7]{8,32}", nonce):
        raise ValueError("nonce must be 8-32 lower-case base32 characters")
    mac = _mac(secret, "message-id", cid, nonce, domain)
    return f"<fd.{cid}.{nonce}.{mac}@{domain}>"


def verify_message_id(
    message_id: str, secret: str | bytes, *, domain: str | None = None
) -> int | None:
    """The conversation id carried by one of OUR Message-IDs, or None when `message_id`
    is not one we signed (forged, altered, another domain, or someone else's)."""
    if not isinstance(message_id, str) or len(message_id) > 300:
        return None
    m = _MESSAGE_ID.fullmatch(message_id.strip().lower())
    if m is None:
        return None
    cid, nonce, mac, mid_domain = m.groups()
    if domain is not None and mid_domain != domain.strip().lower():
        return None
    expected = _mac(secret, "message-id", cid, nonce, mid_domain)
    if not hmac.compare_digest(expected, mac):
        return None
    return int(cid)


_REPLY_LOCAL = re.compile(r"(.+)\+c(\d{1,19})\.([a-z2-7]{16})")


def make_reply_address(address: str, conversation_id: int, secret: str | bytes) -> str:
    """`support@example.com` → `support+c<id>.<mac>@example.com` for `conversation_id`."""
    local, sep, domain = safe_header_value(address).strip().rpartition("@")
    if not sep or not local or "+" in local or not domain:
        raise ValueError(f"not a plain support address: {address!r}")
    domain = _check_domain(domain)
    cid = _check_id(conversation_id)
    mac = _mac(secret, "reply-address", local.lower(), cid, domain)
    return f"{local}+c{cid}.{mac}@{domain}"


def parse_reply_address(address: str, secret: str | bytes) -> tuple[str, int] | None:
    """(`support@example.com`, conversation id) for a reply address we signed, else None."""
    if not isinstance(address, str) or len(address) > 320:
        return None
    local, sep, domain = address.strip().strip("<>").rpartition("@")
    if not sep:
        return None
    m = _REPLY_LOCAL.fullmatch(local.lower())
    if m is None:
        return None
    base, cid, mac = m.groups()
    domain = domain.lower()
    expected = _mac(secret, "reply-address", base, cid, domain)
    if not hmac.compare_digest(expected, mac):
        return None
    return f"{base}@{domain}", int(cid)


_SUBJECT_TOKEN = re.compile(r"\[#(\d{1,19})\]")


def subject_token(conversation_id: int) -> str:
    return f"[#{_check_id(conversation_id)}]"


def parse_subject_token(subject: str | None) -> int | None:
    """The conversation id in a subject's "[#123]" (the last one), or None. Unsigned."""
    if not subject:
        return None
    found = _SUBJECT_TOKEN.findall(unicodedata.normalize("NFKC", subject))
    return int(found[-1]) if found else None
