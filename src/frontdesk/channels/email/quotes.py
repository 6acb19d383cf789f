"""The customer's new words, without the quoted history and the signature, for display.

`split_reply(text, html)` returns `(new_text, quoted)`: `new_text` is what the customer
wrote this time; `quoted` is the rest (quoted history, signature, "Sent from my iPhone"),
which the workspace shows folded. The original is always kept elsewhere, so this may be
wrong in the safe direction only: when in doubt it keeps text, and it never returns an
empty `new_text` for a mail that has text (it falls back to the whole text).

The plain text is read first (it is what clients quote with "> " and attribution lines);
when it shows no history and the HTML has a client's quote marker (`gmail_quote`,
`divRplyFwdMsg`, `moz-cite-prefix`, `<blockquote type="cite">`, ...), the text of the HTML
before that marker is used.

Recognised in the text, at the start of a line:
- attribution lines: "On <date>, <name> wrote:" and its forms in de, fr, es, it, pt, nl,
  ru ("пишет:", "написал(а):", Gmail's "<date> г. в <time>, <name> <address>:"),
  zh ("写道：" / "寫道："), ja, ar ("كتب"), pl, tr, sv — also wrapped over up to 3 lines;
- "-----Original Message-----" (and translations), "Begin forwarded message:",
  "---------- Forwarded message ---------";
- Outlook header blocks: "From: ..." followed by "Sent:"/"Date:" (and translations),
  possibly after a line of underscores;
- a trailing block of "> " lines (interleaved answers before it are kept);
- the signature separator "-- " and mobile footers ("Sent from my iPhone", ...).
"""

from __future__ import annotations

import re

from frontdesk.channels.email.htmltext import html_to_text

_WROTE = (
    r"wrote|schrieb|a écrit|a ecrit|escribió|escribio|ha scritto|scrisse|escreveu|schreef"
    r"|пишет|написал|написала|написал\(а\)|пише|napisał|napisała|pisze|napsal|yazdı|skrev|kirjoitti"
    r"|írta|έγραψε|כתב"
)
# A line (or up to three joined lines) that ends an attribution.
_ATTRIBUTION = re.compile(
    rf"^(?:.{{0,300}}\b(?:{_WROTE})\b.{{0,60}}[:：]"
    r"|.{0,300}(?:写道|寫道|のメッセージ|書きました|كتب).{0,80}[:：]"
    r"|(?:On|Am|Le|El|Il|Em|Op|Den|W dniu|В|Dne)\s.{0,300}"
    r"(?:<[^<>\s]+@[^<>\s]+>|\S+@\S+)\s*[:：])\s*$",
    re.IGNORECASE,
)
# Russian Gmail and Yandex: "пн, 1 янв. 2024 г. в 10:00, Имя <addr>:" — a date, an address,
# a colon, nothing else.
_DATE_ADDRESS_COLON = re.compile(
    r"^.{0,200}(?:\d{1,4}[./-]\d{1,2}|\b(?:19|20)\d\d\b|\d{1,2}:\d{2}).{0,200}"
    r"(?:<[^<>\s]+@[^<>\s]+>|[^\s<>]+@[^\s<>]+)\s*[:：]\s*$"
)
_WRAPPED_START = re.compile(r"^(?:On|Am|Le|El|Il|Em|Op|Den|W dniu|В|Dne|Dana)\s|^\d")
_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine"
    r"|Mensaje original|Messaggio originale|Mensagem original|Oorspronkelijk bericht"
    r"|Исходное сообщение|Пересылаемое сообщение|Forwarded message|Weitergeleitete Nachricht"
    r"|Message transféré|Mensaje reenviado|Original-Nachricht|原始邮件|原始郵件|الرسالة الأصلية"
    r"|Forwarded Message|Reply message)\s*-{2,}"
    r"|Begin forwarded message:|Anfang der weitergeleiteten Nachricht:"
    r"|Début du message réexpédié\s?:|Inicio del mensaje reenviado:"
    r"|-{5,}\s*Original\b.*)\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(
    r"^\s*[*>]*\s*(?:From|Von|De|Da|Van|Från|Od|От|Від|发件人|寄件者|差出人|من|Kimden)\s*[:：]",
    re.IGNORECASE,
)
_HEADER_NEXT = re.compile(
    r"^\s*[*>]*\s*(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado|Fecha|Data|Inviato|Verzonden"
    r"|Skickat|Wysłano|Отправлено|Дата|Надіслано|发送时间|发送日期|日期|寄件日期|送信日時|日時"
    r"|التاريخ|تاريخ|أرسل|تم الإرسال|To|An|À|Para|A|Aan|Кому|收件人|إلى|Subject|Betreff"
    r"|Objet|Asunto|Oggetto|Assunto|Тема|主题|主旨|件名|الموضوع)\s*[:：]",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_SIGNATURE = re.compile(r"^(?:-- ?|--\s*)$")
_MOBILE_FOOTER = re.compile(
    r"^\s*(?:Sent from my \w+|Sent from (?:Mail|Outlook|Yahoo Mail|my mobile|Samsung)"
    r"|Sent via \w+|Get Outlook for (?:iOS|Android)|Envoyé de mon \w+|Envoyé depuis"
    r"|Von meinem \w+ gesendet|Gesendet von meinem|Gesendet mit der|Enviado desde mi"
    r"|Enviado do meu|Inviato da(?:l mio)? \w+|Verzonden vanaf mijn|Skickat från min"
    r"|Отправлено с (?:iPhone|iPad|моего|мобильного)|Отправлено из мобильной|Отправлено из"
    r"|Надіслано з|发自我的|从我的 ?\w+ ?发送|來自我的|iPhone から送信|أرسلت من|تم الإرسال من)"
    r".{0,80}$",
    re.IGNORECASE,
)

# HTML markers clients put where the quoted history (or the signature) starts.
_HTML_MARKERS = re.compile(
    r"""<div[^>]*\bclass=["']?[^"'>]*\b(?:gmail_quote|gmail_attr|gmail_signature|moz-cite-prefix"""
    r"""|moz-signature|yahoo_quoted|protonmail_quote|OutlookMessageHeader)\b"""
    r"""|<blockquote[^>]*\btype=["']?cite"""
    r"""|<div[^>]*\bid=["']?(?:divRplyFwdMsg|appendonsend|Signature|x_divRplyFwdMsg"""
    r"""|mail-editor-reference-message-container)\b"""
    r"""|<hr[^>]*\bid=["']?stopSpelling"""
    r"""|<div[^>]*border-top:\s*solid\s*#(?:E1E1E1|B5C4DF)""",
    re.IGNORECASE,
)


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _blank(line: str) -> bool:
    return not line.strip()


def _attribution_at(lines: list[str], i: int) -> bool:
    line = lines[i].strip()
    if not line or _is_quoted(line) or len(line) > 400:
        return False
    for span in (1, 2, 3):
        if i + span > len(lines):
            break
        window = lines[i : i + span]
        if any(_is_quoted(ln) or _blank(ln) for ln in window):
            break
        if span > 1 and not _WRAPPED_START.match(line):
            break  # only an attribution's own first line may start a wrapped one
        joined = " ".join(ln.strip() for ln in window)
        if _matches_attribution(joined, lines, i + span):
            return True
    return False


def _matches_attribution(joined: str, lines: list[str], after: int) -> bool:
    if _ATTRIBUTION.match(joined) and re.search(r"\d|@", joined):
        return True
    return bool(_DATE_ADDRESS_COLON.match(joined)) and _quote_follows(lines, after)


def _quote_follows(lines: list[str], i: int) -> bool:
    for ln in lines[i : i + 3]:
        if _blank(ln):
            continue
        return _is_quoted(ln)
    return False


def _outlook_block_at(lines: list[str], i: int) -> bool:
    if not _HEADER_FROM.match(lines[i]):
        return False
    following = [ln for ln in lines[i + 1 : i + 6] if not _blank(ln)][:4]
    return sum(1 for ln in following if _HEADER_NEXT.match(ln)) >= 2


def _cut_index(lines: list[str]) -> int | None:
    """The line where history or signature starts, or None when there is none."""
    first_content = next((i for i, ln in enumerate(lines) if not _blank(ln)), None)
    if first_content is None:
        return None
    for i in range(len(lines)):
        line = lines[i]
        if _SEPARATOR.match(line) or _attribution_at(lines, i):
            return i
        if _UNDERSCORES.match(line) and i + 1 < len(lines):
            nxt = next((j for j in range(i + 1, min(i + 3, len(lines))) if lines[j].strip()), None)
            if nxt is not None and _outlook_block_at(lines, nxt):
                return i
        if _outlook_block_at(lines, i):
            return i
        if i > first_content and (_SIGNATURE.match(line) or _MOBILE_FOOTER.match(line)):
            return i
        if i == first_content and _MOBILE_FOOTER.match(line):
            return i
    # A trailing block of "> " lines (blank lines allowed inside and after it).
    last_own = max(
        (i for i, ln in enumerate(lines) if not _blank(ln) and not _is_quoted(ln)), default=-1
    )
    quoted_after = [i for i in range(last_own + 1, len(lines)) if _is_quoted(lines[i])]
    if quoted_after:
        return quoted_after[0]
    return None


def _split_text(text: str) -> tuple[str, str] | None:
    lines = text.split("\n")
    cut = _cut_index(lines)
    if cut is None:
        return None
    new = "\n".join(lines[:cut]).strip()
    quoted = "\n".join(lines[cut:]).strip()
    return new, quoted


def _split_html(source: str) -> tuple[str, str] | None:
    m = _HTML_MARKERS.search(source)
    if m is None:
        return None
    return html_to_text(source[: m.start()]), html_to_text(source[m.start() :])


def split_reply(text: str, html: str | None = None) -> tuple[str, str]:
    """(new_text, quoted) of a mail's text; see the module docstring."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    full = text.strip()
    by_text = _split_text(text)
    if by_text is not None and by_text[0]:
        return by_text
    if html and by_text is None:
        parts = _split_html(html)
        if parts is not None:
            before, after = parts
            own = _split_text(before)
            new = (own[0] if own is not None and own[0] else before).strip()
            if new:
                rest = [own[1]] if own is not None and own[0] else []
                return new, "\n\n".join([*rest, after.strip()]).strip()
    if not full and html:
        full = html_to_text(html).strip()
    return full, ""
