"""Delivery status notifications (bounces): who could not be reached, why, and which of
our messages it was.

A standard DSN (RFC 3464) is a `multipart/report; report-type=delivery-status` whose
`message/delivery-status` part has a per-message block and one block per recipient, and
which carries the original message (`message/rfc822`) or its headers
(`text/rfc822-headers`): the original's Message-ID is how the caller finds OUR outbound
message and marks it failed. Some servers (qmail, old Exim, some appliances) still send
plain-text bounces; those are recognised by their sender and subject and read by pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([45])\d\d\b")
_MSGID_LINE = re.compile(r"^\s*Message-ID:\s*<([^<>\s]{1,500})>", re.IGNORECASE | re.MULTILINE)
_ADDRESS = re.compile(r"<?([A-Za-z0-9._%+=!#$&'*/?^`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253})>?")

BOUNCE_SENDERS = ("mailer-daemon", "postmaster", "mail-daemon", "maildaemon")
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered mail|delivery status notification|delivery (?:has )?fail"
    r"|failure notice|returned mail|mail delivery failed|delivery failure"
    r"|could not be delivered|nondeliverable|non-delivery"
    r"|недоставлен|не доставлен|unzustellbar|nicht zugestellt|non remis|无法投递|退信",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class BounceRecipient:
    recipient: str
    action: str | None = None  # failed | delayed | delivered | relayed | expanded
    status: str | None = None  # RFC 3463 enhanced status, e.g. "5.1.1"
    diagnostic_code: str | None = None  # e.g. "smtp; 550 5.1.1 user unknown"
    remote_mta: str | None = None


@dataclass(frozen=True, slots=True)
class Bounce:
    recipients: tuple[BounceRecipient, ...]
    original_message_id: str | None  # without angle brackets
    reporting_mta: str | None = None
    standard: bool = True  # False: read from a plain-text bounce by pattern

    @property
    def failed(self) -> bool:
        """Delivery failed for good (not merely delayed, or a success notice)."""
        if not self.recipients:
            return not self.standard or self.original_message_id is not None
        return any(
            (r.action or "").lower() == "failed"
            or (r.action is None and (r.status or "").startswith("5"))
            for r in self.recipients
        )

    @property
    def reason(self) -> str:
        """One line for the agent: the first failed recipient's diagnostic or status."""
        for r in self.recipients:
            if r.diagnostic_code or r.status:
                detail = r.diagnostic_code or f"status {r.status}"
                return f"{r.recipient}: {detail}" if r.recipient else detail
        return "delivery failed"


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    name = ""
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            fields[name] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        name = key.strip().lower()
        fields[name] = value.strip()
    return fields


def _typed(value: str | None) -> str | None:
    """`rfc822; user@example.com` → `user@example.com`."""
    if not value:
        return None
    _, sep, rest = value.partition(";")
    return (rest if sep else value).strip().strip("<>") or None


def parse_delivery_status(text: str) -> tuple[str | None, list[BounceRecipient]]:
    """The reporting MTA and the recipients of a message/delivery-status body."""
    blocks = [b for b in re.split(r"\r?\n\s*\r?\n", text.strip()) if b.strip()]
    if not blocks:
        return None, []
    per_message = _fields(blocks[0])
    reporting = _typed(per_message.get("reporting-mta"))
    recipients: list[BounceRecipient] = []
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        f = _fields(block)
        who = _typed(f.get("final-recipient")) or _typed(f.get("original-recipient"))
        if who is None and "action" not in f and "status" not in f:
            continue
        status = f.get("status")
        m = _STATUS.search(status or "")
        recipients.append(
            BounceRecipient(
                recipient=(who or "")[:320],
                action=(f.get("action") or "").strip().lower()[:32] or None,
                status=m.group(0) if m else (status[:32] if status else None),
                diagnostic_code=(f.get("diagnostic-code") or None) and f["diagnostic-code"][:1000],
                remote_mta=_typed(f.get("remote-mta")),
            )
        )
    return reporting, recipients


def message_id_in_headers(text: str) -> str | None:
    """The Message-ID in a block of returned headers (or a returned message)."""
    unfolded = re.sub(r"\r?\n[ \t]+", " ", text)
    m = _MSGID_LINE.search(unfolded)
    return m.group(1) if m else None


def looks_like_bounce(sender: str, sender_name: str, subject: str) -> bool:
    local = sender.split("@", 1)[0].lower()
    by_sender = local in BOUNCE_SENDERS or "mail delivery" in sender_name.lower()
    return (by_sender and bool(_BOUNCE_SUBJECT.search(subject))) or (
        local in BOUNCE_SENDERS and not subject
    )


def plain_text_bounce(text: str, extra: str = "") -> Bounce:
    """A bounce without a delivery-status part, read by pattern (qmail, Exim, appliances)."""
    body = text + "\n" + extra
    recipients: list[BounceRecipient] = []
    # qmail: "<user@example.com>:" on its own line, the reason below it.
    for m in re.finditer(r"^<([^<>\s]+@[^<>\s]+)>:\s*\n(.{0,300})", body, re.MULTILINE):
        st = _STATUS.search(m.group(2))
        recipients.append(BounceRecipient(
            recipient=m.group(1), action="failed", status=st.group(0) if st else None,
            diagnostic_code=m.group(2).strip()[:1000] or None))
    if not recipients:
        # Exim: "  user@example.com\n    host ... said: 550 ..."; others: any address
        # followed by an SMTP error on the next lines.
        for m in re.finditer(
            r"^\s+([^\s@<>]+@[^\s@<>]+)\s*\n((?:\s+.*\n?){1,4})", body, re.MULTILINE
        ):
            detail = " ".join(m.group(2).split())
            if _SMTP_CODE.search(detail) or _STATUS.search(detail):
                st = _STATUS.search(detail)
                recipients.append(BounceRecipient(
                    recipient=m.group(1), action="failed",
                    status=st.group(0) if st else None, diagnostic_code=detail[:1000]))
    return Bounce(tuple(recipients[:50]), message_id_in_headers(body), None, standard=False)
