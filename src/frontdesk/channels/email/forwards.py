"""Who wrote a forwarded mail, from the header block a mail client writes under its
"forward" separator (Gmail's "---------- Forwarded message ---------", Apple Mail's "Begin
forwarded message:", Thunderbird's "-------- Forwarded Message --------", and their
translations). Pure text in, raw field values out; `parsing` reads the addresses.

The forwarded part's people are kept on the mail's record (`forwarded`) so the agent sees
who originally wrote; they are never made participants of the conversation (a reply-all
must not reach the courier whose notice the customer forwarded).
"""

from __future__ import annotations

import re

MAX_FORWARDS = 20
MAX_VALUE = 1000

_MARKER = re.compile(
    r"^\s*(?:-{2,}\s*(?:Forwarded message|Forwarded Message|Weitergeleitete Nachricht"
    r"|Пересылаемое сообщение|Message transféré|Mensaje reenviado|Messaggio inoltrato"
    r"|Mensagem encaminhada|Doorgestuurd bericht|转发的邮件|轉寄的郵件)\s*-{2,}"
    r"|Begin forwarded message:|Anfang der weitergeleiteten Nachricht:"
    r"|Début du message réexpédié\s?:|Inicio del mensaje reenviado:)\s*$",
    re.IGNORECASE,
)
# "From: ..." lines of the block (Gmail may bold the names: "*From:* ...").
_FIELD = re.compile(r"^\s*\**\s*([^\s:：*][^:：*]{0,30}?)\s*\**\s*[:：]\s*\**\s*(.*?)\s*$")
_FIELD_NAMES = {
    "from": ("from", "von", "de", "da", "van", "от", "від", "发件人", "寄件者", "差出人", "من"),
    "to": ("to", "an", "à", "a", "para", "aan", "кому", "收件人", "宛先", "إلى"),
    "cc": ("cc", "kopie", "копия", "抄送", "副本"),
    "subject": ("subject", "betreff", "objet", "asunto", "oggetto", "assunto", "onderwerp",
                "тема", "主题", "主旨", "件名", "الموضوع"),
    "date": ("date", "sent", "datum", "gesendet", "envoyé", "fecha", "enviado", "data",
             "дата", "отправлено", "日期", "发送时间", "日時", "التاريخ"),
}
_FIELD_OF = {name: field for field, names in _FIELD_NAMES.items() for name in names}


def inline_forwards(text: str) -> list[dict[str, str]]:
    """The header blocks under forward separators in `text`, each as {"from", "to", "cc",
    "subject", "date"} raw values (only the fields present; a block without "from" is not
    a forward's and is left out), in the order they appear."""
    found: list[dict[str, str]] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if not _MARKER.match(line.lstrip("> ")):
            continue
        block: dict[str, str] = {}
        for following in lines[index + 1:index + 16]:
            following = following.lstrip(">").strip()
            if not following:
                if block:
                    break
                continue  # Apple Mail leaves a blank line under its separator
            m = _FIELD.match(following)
            field = _FIELD_OF.get(m.group(1).strip().lower()) if m else None
            if m is None or field is None:
                break
            block.setdefault(field, m.group(2)[:MAX_VALUE])
        if block.get("from"):
            found.append(block)
            if len(found) >= MAX_FORWARDS:
                break
    return found
