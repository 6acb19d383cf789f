"""Raw mails for the e-mail channel's tests, built with the standard library."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime

from frontdesk.db.base import utcnow


def new_message_id(domain: str = "customer.example") -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


def make_mail(
    *, sender: str, to: str, subject: str = "Help please", body: str = "Hello, I need help.",
    message_id: str | None = None, in_reply_to: str | None = None,
    references: list[str] | None = None, cc: list[str] | None = None, html: str | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    inline_images: Sequence[tuple[str, str, bytes]] = (),
    headers: dict[str, str] | None = None,
) -> bytes:
    """attachments: (filename, content type, bytes); inline_images: (content id, type, bytes)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = message_id or new_message_id()
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
        if inline_images:
            html_part = msg.get_payload()[1]  # type: ignore[index]
            for cid, ctype, data in inline_images:
                main, sub = ctype.split("/")
                html_part.add_related(data, maintype=main, subtype=sub, cid=f"<{cid}>")
    for filename, ctype, data in attachments:
        main, sub = ctype.split("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=filename)
    return bytes(msg)
