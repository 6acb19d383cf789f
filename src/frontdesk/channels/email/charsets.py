"""Bytes to text for e-mail: declared charsets, the labels people get wrong, encoded words.

Mail declares its charset, and the declaration is often wrong: "us-ascii" or "iso-8859-1"
on UTF-8 or windows-1251 text, "gb2312" on GBK text, "utf-8" on windows-1251. The rule
here is *declared → UTF-8 → detector*: the declared charset is used when it decodes the
bytes (and, for the Western single-byte labels that decode anything, when the result does
not look like mojibake); else UTF-8; else the most plausible of the charsets mail is
actually written in, scored by script coherence (short texts) with charset-normalizer's
opinion as a vote (longer texts). Every guess is reported as a defect so an admin can see
why a message looks the way it does.

Nothing in this module raises on bad input.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import charset_normalizer

from frontdesk.channels.email.headers import one_line

# Labels mapped to the codec that actually decodes what senders write under them: a
# superset (gb2312 → gb18030, big5 → big5hkscs, shift_jis → cp932, iso-8859-1 →
# windows-1252, as browsers do) or a Python spelling. None: a label that names no charset.
_ALIASES: dict[str, str | None] = {
    "gb2312": "gb18030", "gb_2312": "gb18030", "gb_2312-80": "gb18030", "csgb2312": "gb18030",
    "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "ms936": "gb18030",
    "windows-936": "gb18030", "euc-cn": "gb18030", "euccn": "gb18030", "x-euc-cn": "gb18030",
    "chinese": "gb18030", "gb18030": "gb18030",
    "big5": "big5hkscs", "big-5": "big5hkscs", "x-x-big5": "big5hkscs", "cn-big5": "big5hkscs",
    "csbig5": "big5hkscs", "big5-hkscs": "big5hkscs",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "ms_kanji": "cp932", "csshiftjis": "cp932", "windows-31j": "cp932",
    "euc-kr": "cp949", "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "korean": "cp949",
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "iso_8859-1": "cp1252", "latin1": "cp1252",
    "latin-1": "cp1252", "l1": "cp1252", "windows-1252": "cp1252", "cp1252": "cp1252",
    "us-ascii": "ascii", "ascii": "ascii", "ansi_x3.4-1968": "ascii", "us": "ascii",
    "iso-8859-8-i": "iso8859_8", "iso-8859-6-i": "iso8859_6", "iso-8859-6-e": "iso8859_6",
    "iso-8859-8-e": "iso8859_8", "iso-8859-9": "cp1254", "iso-8859-11": "cp874",
    "windows-874": "cp874", "tis-620": "cp874",
    "utf8": "utf-8", "utf-8": "utf-8", "unicode-1-1-utf-8": "utf-8",
    "unicode-1-1-utf-7": "utf-7", "x-mac-cyrillic": "mac_cyrillic", "x-mac-roman": "mac_roman",
    "x-unknown": None, "unknown": None, "unknown-8bit": None, "x-user-defined": None,
    "default": None, "charset": None, "none": None, "8bit": None, "binary": None,
}

# Codecs that are text codecs to Python but not charsets a mail may name.
_REFUSED_CODECS = ("escape", "idna", "punycode", "undefined", "mbcs", "oem", "palmos")

# Labels that say little: senders put them on anything.
WEAK_CODECS = frozenset({"ascii", "cp1252"})

# What mail is really written in, in order of preference when two decodings score alike.
_CANDIDATES: tuple[str, ...] = (
    "cp1251", "gb18030", "big5hkscs", "cp932", "cp1256", "koi8_r", "cp949", "cp1253",
    "cp1255", "cp1250", "cp1254", "cp1252",
)


def resolve_charset(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when it names no usable charset."""
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if "*" in name:  # RFC 2231 language suffix: utf-8*en
        name = name.split("*", 1)[0]
    if not name or len(name) > 40:
        return None
    if name in _ALIASES:
        return _ALIASES[name]
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    if any(word in info.name for word in _REFUSED_CODECS):
        return None
    mapped = _ALIASES.get(info.name.replace("_", "-"))
    return mapped if mapped is not None else info.name


@dataclass(frozen=True, slots=True)
class DecodedText:
    text: str
    charset: str  # the codec used in the end
    defect: str | None = None  # why it is not the declared one, when it is not


def _strict(payload: bytes, codec: str) -> str | None:
    try:
        return payload.decode(codec)
    except (UnicodeDecodeError, LookupError, ValueError):
        return None


def _ascii_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def plausibility(text: str) -> float:
    """How much `text` looks like something a person wrote (higher is better).

    Scores the non-ASCII characters: letters of one script score, control characters,
    private-use, replacement characters, half-width katakana and box drawing (what a wrong
    single-byte decoding produces) cost. Latin accented letters score only next to ASCII
    letters: "Ïðèâåò" (windows-1251 read as Latin-1) is all accents, real French is not.
    A decoding that mixes scripts is scaled down by the share of its main script.
    """
    total = 0.0
    count = 0
    scripts: dict[str, int] = {}
    lower_cyrillic = upper_cyrillic = 0
    prev = ""
    for i, ch in enumerate(text):
        o = ord(ch)
        if o < 128:
            prev = ch
            continue
        count += 1
        nxt = text[i + 1] if i + 1 < len(text) else ""
        cat = unicodedata.category(ch)
        script = ""
        if 0x80 <= o < 0xA0 or cat in ("Cc", "Co", "Cn", "Cs") or ch == "\ufffd":
            score = -3.0
        elif 0xFF61 <= o <= 0xFF9F or 0x2500 <= o <= 0x259F:
            # half-width katakana (Cyrillic read as Shift_JIS), box drawing (as KOI8-R)
            score = -1.0
        elif 0x0400 <= o <= 0x04FF:
            script = "cyrillic"
            score = 1.0
            if ch.islower():
                lower_cyrillic += 1
            elif ch.isupper():
                upper_cyrillic += 1
        elif 0x0600 <= o <= 0x06FF or 0xFB50 <= o <= 0xFEFF:
            script = "arabic"
            score = 1.0
        elif 0x0590 <= o <= 0x05FF:
            script = "hebrew"
            score = 1.0
        elif 0x0370 <= o <= 0x03FF:
            script = "greek"
            score = 0.8
        elif 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF:
            script = "cjk"
            score = 1.0
        elif 0x3040 <= o <= 0x30FF:  # kana: Japanese writes it between its kanji
            script = "cjk"
            score = 1.1
        elif 0xAC00 <= o <= 0xD7A3:
            script = "hangul"
            score = 1.0
        elif 0x3000 <= o <= 0x303F or 0xFF00 <= o <= 0xFF60:
            score = 0.5
        elif cat.startswith("L") and o < 0x0250:  # Latin with accents
            script = "latin"
            near_ascii = (prev.isascii() and prev.isalpha()) or (nxt.isascii() and nxt.isalpha())
            score = 1.0 if near_ascii else 0.1
        elif cat in ("Zs", "Pd", "Pi", "Pf", "Po", "Ps", "Pe") or o in (0x20AC, 0x2122):
            score = 0.3
        elif cat in ("So", "Sk", "Sm", "Sc", "No"):
            score = -0.5
        else:
            score = 0.0
        if script not in ("", "latin") and (_ascii_letter(prev) or _ascii_letter(nxt)):
            score = -0.5  # a Cyrillic (Arabic, ...) letter inside a Latin word: mojibake
        if script:
            scripts[script] = scripts.get(script, 0) + 1
        total += score
        prev = ch
    if count == 0:
        return 1.0
    result = total / count
    letters = sum(scripts.values())
    if letters:
        result *= max(scripts.values()) / letters
    if lower_cyrillic + upper_cyrillic:
        result += 0.3 * (lower_cyrillic - upper_cyrillic) / (lower_cyrillic + upper_cyrillic)
    return result


def _detector_vote(payload: bytes, candidates: Sequence[str]) -> str | None:
    if sum(1 for b in payload[:65536] if b > 127) < 32:
        return None  # too little text for a statistical detector to beat a coin
    try:
        best = charset_normalizer.from_bytes(
            payload[:65536], cp_isolation=list(candidates), explain=False
        ).best()
    except Exception:  # a third-party detector must never break intake
        return None
    if best is None:
        return None
    return resolve_charset(best.encoding) or best.encoding


def guess_charset(payload: bytes, hints: Iterable[str] = ()) -> DecodedText:
    """The most plausible decoding of non-UTF-8 bytes among the charsets mail is written in."""
    order: list[str] = []
    for name in [*hints, *_CANDIDATES]:
        codec = resolve_charset(name)
        if codec and codec not in order and codec not in ("ascii", "utf-8"):
            order.append(codec)
    vote = _detector_vote(payload, order)
    best: tuple[float, str, str] | None = None
    for rank, codec in enumerate(order):
        text = _strict(payload, codec)
        if text is None:
            continue
        score = plausibility(text) - rank * 0.001
        if codec == vote:
            score += 0.15
        if best is None or score > best[0]:
            best = (score, codec, text)
    if best is None:
        return DecodedText(payload.decode("utf-8", "replace"), "utf-8")
    return DecodedText(best[2], best[1])


def decode_bytes(
    payload: bytes, declared: str | None, *, hints: Iterable[str] = (), what: str = "text"
) -> DecodedText:
    """Decode `payload` declared as `declared`: declared → UTF-8 → detector. The text has
    no NUL and no lone surrogate (see `storable`)."""
    decoded = _decode_bytes(payload, declared, hints=hints, what=what)
    clean = storable(decoded.text)
    if clean is decoded.text:
        return decoded
    return DecodedText(clean, decoded.charset, decoded.defect)


def _decode_bytes(
    payload: bytes, declared: str | None, *, hints: Iterable[str], what: str
) -> DecodedText:
    codec = resolve_charset(declared)
    unknown = bool(declared) and codec is None
    if payload.isascii() and (codec is None or codec in WEAK_CODECS or codec == "utf-8"):
        note = f"unknown charset {declared!r} in {what}" if unknown else None
        return DecodedText(payload.decode("ascii"), "ascii", note)
    label = declared.strip().strip("\"'") if declared else None
    if codec is not None and codec not in WEAK_CODECS:
        text = _strict(payload, codec)
        if text is not None:
            return DecodedText(text, codec)
    as_utf8 = _strict(payload, "utf-8")
    if as_utf8 is not None:
        if codec is None:
            why = f"unknown charset {label!r}" if unknown else "no charset declared"
        else:
            why = f"declared {label}"
        return DecodedText(as_utf8, "utf-8", f"{what}: {why} but the content is UTF-8")
    hint_list = list(hints)
    if codec == "cp1252":
        western = _strict(payload, "cp1252") or payload.decode("latin-1")
        guess = guess_charset(payload, hint_list)
        if guess.charset != "cp1252" and plausibility(guess.text) > plausibility(western) + 0.3:
            return DecodedText(
                guess.text, guess.charset,
                f"{what}: declared {label} but the content reads as {guess.charset}",
            )
        return DecodedText(western, "cp1252")
    guess = guess_charset(payload, hint_list)
    if codec is None:
        why = f"unknown charset {label!r}" if unknown else "no charset declared"
    else:
        why = f"declared {label} does not decode it"
    return DecodedText(guess.text, guess.charset, f"{what}: {why}; decoded as {guess.charset}")


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATES = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` without what a database cannot store: NUL and lone surrogates (8-bit bytes the
    parser kept surrogate-escaped are read as UTF-8, anything else becomes U+FFFD)."""
    if not _UNSTORABLE.search(text):
        return text
    text = text.replace("\x00", "")
    with contextlib.suppress(UnicodeEncodeError):  # a surrogate no byte could have made
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _SURROGATES.sub("\ufffd", text)


# --- RFC 2047 encoded words ---------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,60})\?([bBqQ])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SURROGATE = re.compile("[\udc80-\udcff]")


def _b_decode(data: str) -> tuple[bytes, bool]:
    """Base64 that tolerates missing padding and stray characters; (bytes, was_broken)."""
    clean = re.sub(r"[^A-Za-z0-9+/]", "", data)
    broken = clean != data.rstrip("=") or (len(data) % 4 != 0)
    clean = clean[: len(clean) - (len(clean) % 4 == 1)]  # one dangling char carries no byte
    clean += "=" * (-len(clean) % 4)
    try:
        return base64.b64decode(clean), broken
    except (binascii.Error, ValueError):
        return b"", True


def _q_decode(data: str) -> bytes:
    raw = data.replace("_", " ").encode("latin-1", "replace")
    return re.sub(
        rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw
    )


def to_raw_bytes(value: str) -> bytes:
    """A header string as the parser read it (ASCII plus surrogate-escaped 8-bit) to bytes."""
    return value.encode("utf-8", "surrogateescape")


def decode_header_text(
    value: str | None, *, hints: Sequence[str] = (), name: str = "header"
) -> tuple[str, list[str]]:
    """A header value as readable text: unfolded, 8-bit bytes and encoded words decoded.

    Adjacent encoded words in one charset are joined before decoding, so a character split
    between two words (as some senders do) survives; whitespace between encoded words is
    dropped (RFC 2047 §6.2). The text is one line: control characters (CR, LF, NUL...)
    and line separators, raw or encoded, become a space (`headers.one_line`). Returns
    (text, defects).
    """
    if not value:
        return "", []
    defects: list[str] = []
    text = _FOLD.sub("", value)
    if _SURROGATE.search(text):  # 8-bit bytes the parser could not decode: find out what
        decoded = decode_bytes(to_raw_bytes(text), None, hints=hints, what=name)
        text = decoded.text
        defects.append(f"{name}: unencoded 8-bit characters (read as {decoded.charset})")
    out: list[str] = []
    pos = 0
    pending: list[tuple[str, bytes]] = []  # (charset, bytes) of adjacent encoded words

    def flush() -> None:
        if not pending:
            return
        groups: list[tuple[str, bytearray]] = []
        for cs, data in pending:
            if groups and groups[-1][0] == cs:
                groups[-1][1].extend(data)
            else:
                groups.append((cs, bytearray(data)))
        for cs, chunk in groups:
            dec = decode_bytes(bytes(chunk), cs, hints=hints, what=name)
            if dec.defect:
                defects.append(dec.defect)
            out.append(dec.text)
        pending.clear()

    for m in _ENCODED_WORD.finditer(text):
        between = text[pos : m.start()]
        if not (pending and between.strip() == ""):
            flush()
            out.append(between)
        charset, enc, data = m.group(1), m.group(2).upper(), m.group(3)
        if enc == "B":
            payload, broken = _b_decode(data)
            if broken:
                defects.append(f"{name}: broken base64 in an encoded word")
        else:
            payload = _q_decode(data)
        pending.append((charset.split("*", 1)[0].lower(), payload))
        pos = m.end()
    flush()
    out.append(text[pos:])
    # One line, whatever the words decoded to: a display name or a subject is written into
    # headers again (replies' Cc, "Re:"), where a line break would inject a header.
    return one_line(storable("".join(out))).strip(), defects


def html_meta_charset(payload: bytes) -> str | None:
    """The charset an HTML document declares in a <meta> tag, if any."""
    m = re.search(
        rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_:.+-]{1,40})",
        payload[:4096],
        re.IGNORECASE,
    )
    return m.group(1).decode("ascii") if m else None
