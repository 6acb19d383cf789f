"""Outbound e-mail: an agent's reply in an e-mail conversation, sent through the relay.

Two halves, joined by the `email_outbound` table (the same shape as webhook delivery):

- `EmailOutboundListener` (a dispatcher listener) sees `message.created` for a pending
  outgoing message of an e-mail inbox and, inside the dispatch transaction, fixes what the
  mail will be: its signed Message-ID (also stored as the message's `external_id`, so a
  reply to it, or a bounce of it, finds it), its recipients (the contact, and reply-all to
  the other participants), its subject and thread headers (an `email_messages` record).
  The insert is keyed on the message and does nothing on conflict: an event dispatched
  twice still makes one mail.
- `EmailSender` claims due rows with a lease, sends them with aiosmtplib outside any
  transaction, and records the outcome: `sent`, a retry later (temporary failures:
  connection errors, 4xx) with full-jitter exponential backoff, or `failed` (5xx, or the
  attempts ran out). The message's `delivery_status` follows (`sent` / `failed` with
  `delivery_error`). A process that dies mid-send leaves the lease to expire and the mail
  is sent again (at-least-once; the same Message-ID lets receivers drop the repeat).
"""

from __future__ import annotations

import asyncio
import email.policy
import html
import logging
import random
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.channels.email.headers import (
    make_message_id,
    make_reply_address,
    one_line,
    safe_header_value,
)
from frontdesk.channels.email.imap import tls_context
from frontdesk.channels.email.models import (
    Direction,
    EmailParticipant,
    EmailRecord,
    OutboundEmail,
    OutboundStatus,
    SupportAddress,
)
from frontdesk.channels.email.parsing import EmailAddress
from frontdesk.channels.email.service import merged_conversations, thread_secret
from frontdesk.channels.email.storage import attachment_store
from frontdesk.channels.models import ChannelType, Inbox
from frontdesk.config import Settings
from frontdesk.contacts.models import Contact
from frontdesk.conversations.models import (
    Conversation,
    DeliveryStatus,
    Message,
    MessageType,
    SenderType,
)
from frontdesk.core.background import PumpLoop
from frontdesk.core.dispatcher import AfterCommit, DispatchedEvent
from frontdesk.core.events import EventType
from frontdesk.db.base import utcnow

log = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 30.0
MAX_REFERENCES = 20
# CRLF, and headers folded only past SMTP's 998-character line limit: a folded Message-ID
# or In-Reply-To is legal, but some mail clients then fail to thread.
_OUTBOUND_POLICY = email.policy.SMTP.clone(max_line_length=998)


def reply_subject(subject: str | None) -> str:
    """"Re: <subject>" once, on one line (a subject from a mail may hold folded lines)."""
    text = " ".join((subject or "").split())
    if not text:
        return "Re: your message"
    return text if text.lower().startswith(("re:", "aw:", "sv:", "ответ:", "回复:")) \
        else f"Re: {text}"


@dataclass(frozen=True)
class ReplyRecipients:
    subject: str | None
    to: str | None  # the contact's address (else the first participant's)
    to_name: str
    # The other participants (reply-all), "Name <address>" with names as written: stored so
    # on the record and shown; `build_mail` encodes them (RFC 2047) in the headers.
    cc: list[str]

    @property
    def to_display(self) -> str:
        """For the agent: the name as written (a header would RFC 2047-encode it)."""
        return EmailAddress(self.to, self.to_name).readable if self.to else ""


async def reply_recipients(session: AsyncSession, conversation_id: int) -> ReplyRecipients:
    """Whom an agent's reply in an e-mail conversation goes to (the caller has checked the
    conversation is the agent's workspace's)."""
    conversation = (await session.execute(
        select(Conversation.subject, Contact.email, Contact.name)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.id == conversation_id))).one()
    participants = list({p.address: p for p in (await session.execute(
        select(EmailParticipant.address, EmailParticipant.name)
        .where(EmailParticipant.conversation_id.in_(merged_conversations(conversation_id)))
        .order_by(EmailParticipant.created_at, EmailParticipant.address))).all()}.values())
    to = conversation.email.lower() if conversation.email else None
    to_name = conversation.name or ""
    if to is None and participants:
        to, to_name = participants[0].address, participants[0].name
    # Names on one line: one stored before parsing made them so must not stop every reply.
    return ReplyRecipients(
        subject=conversation.subject, to=to, to_name=one_line(to_name),
        cc=[EmailAddress(p.address, one_line(p.name)).readable
            for p in participants if p.address != to])


async def reply_from_address(session: AsyncSession, inbox_id: int,
                             conversation_id: int) -> str | None:
    """The address a reply in the conversation comes from: the one of the inbox's addresses
    the customer's first mail was sent to (a customer who wrote to sales@ hears back from
    sales@), if the inbox still receives there. None: the inbox's primary address."""
    return (await session.execute(
        select(EmailRecord.support_address)
        .join(Message, Message.id == EmailRecord.message_id)
        .join(SupportAddress, (SupportAddress.address == EmailRecord.support_address)
              & (SupportAddress.inbox_id == inbox_id))
        .where(Message.conversation_id == conversation_id,
               EmailRecord.direction == Direction.INBOUND.value)
        .order_by(EmailRecord.message_id).limit(1))).scalar()


class EmailOutboundListener:
    """Dispatcher listener: one pending outbound mail per agent reply in an e-mail inbox."""

    name = "email-outbound"

    def __init__(self, settings: Settings,
                 on_new_mail: Callable[[], None] | None = None) -> None:
        self._settings = settings
        self._on_new_mail = on_new_mail

    async def handle(self, session: AsyncSession,
                     events: Sequence[DispatchedEvent]) -> AfterCommit | None:
        replies = [e for e in events if e.type == EventType.MESSAGE_CREATED.value
                   and e.payload["message"]["message_type"] == MessageType.OUTGOING.value
                   and e.payload["message"]["delivery_status"] == DeliveryStatus.PENDING.value]
        if not replies:
            return None
        inbox_ids = {e.payload["message"]["inbox_id"] for e in replies}
        inboxes = {row.id: row for row in (await session.execute(
            select(Inbox.id, Inbox.settings).where(
                Inbox.id.in_(inbox_ids), Inbox.channel == ChannelType.EMAIL.value)
        )).all()}
        queued = False
        for event in replies:
            message = event.payload["message"]
            inbox = inboxes.get(message["inbox_id"])
            if inbox is None or not inbox.settings.get("email"):
                continue
            queued |= await self._prepare(session, event.workspace_id, message, inbox.settings,
                                          reply_all=bool(event.payload.get("reply_all", True)))
        # After the commit: the sender goes at once rather than at its next poll.
        return self._on_new_mail if queued else None

    async def _prepare(self, session: AsyncSession, workspace_id: int,
                       message: dict[str, Any], settings: dict[str, Any], *,
                       reply_all: bool = True) -> bool:
        """Queue the reply's mail; False if an earlier dispatch of the event already did."""
        message_id = int(message["id"])
        conversation_id = int(message["conversation_id"])
        address = await reply_from_address(session, int(message["inbox_id"]),
                                           conversation_id) or str(settings["email"])
        header_id = make_message_id(address.rpartition("@")[2], conversation_id,
                                    thread_secret(self._settings))
        now = utcnow()
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        won = (await session.execute(
            insert(OutboundEmail).values(
                workspace_id=workspace_id, message_id=message_id,
                header_message_id=header_id.strip("<>"), status=OutboundStatus.PENDING.value,
                attempts=0, next_attempt_at=now, created_at=now,
            ).on_conflict_do_nothing(index_elements=["message_id"])
            .returning(OutboundEmail.id)
        )).scalar_one_or_none()
        if won is None:  # this event was dispatched before: the mail is already queued
            return False
        recipients = await reply_recipients(session, conversation_id)
        # A bot's message (the inbox's acknowledgement) is automatic mail: marked so, and
        # to the sender alone (RFC 3834), never reply-all.
        automatic = message["sender_type"] == SenderType.BOT.value
        to = recipients.to
        cc = [] if automatic or not reply_all else recipients.cc
        # The thread: answer the latest mail of the conversation (usually the customer's).
        # (By the messages' conversation: an agent may have moved or merged messages.)
        parent = (await session.execute(
            select(EmailRecord.header_message_id, EmailRecord.reference_ids,
                   EmailRecord.subject)
            .join(Message, Message.id == EmailRecord.message_id)
            .where(Message.conversation_id == conversation_id,
                   EmailRecord.message_id != message_id)
            .order_by(EmailRecord.message_id.desc()).limit(1))).first()
        references: list[str] = []
        in_reply_to = None
        if parent is not None:
            in_reply_to = parent.header_message_id
            references = [*parent.reference_ids, parent.header_message_id][-MAX_REFERENCES:]
        session.add(EmailRecord(
            message_id=message_id, workspace_id=workspace_id, inbox_id=message["inbox_id"],
            conversation_id=conversation_id, direction=Direction.OUTBOUND.value,
            header_message_id=header_id.strip("<>"),
            subject=reply_subject(recipients.subject or (parent.subject if parent else "")),
            from_address=address, from_name=str(settings.get("from_name") or ""),
            to_addresses=[recipients.to_display] if to else [],
            cc_addresses=cc, in_reply_to=in_reply_to, reference_ids=references,
            text=message["content"], quoted_text="",
            automatic_kind="auto-replied" if automatic else None,
            automatic_reason=None, is_bounce=False, thread_note=None, defects=[],
            raw_sha256=None, source="agent", created_at=now,
        ))
        await session.execute(update(Message).where(Message.id == message_id)
                              .values(external_id=header_id.strip("<>")[:512]))
        return True


# ------------------------------------------------------------------------------ sending


@dataclass(frozen=True)
class OutboundJob:
    outbound_id: int
    message_id: int
    attempt: int
    mail: EmailMessage | None  # None: it cannot be built (the reason is in `error`)
    sender: str
    recipients: list[str]
    error: str | None = None


class PermanentFailure(Exception):
    """The relay refused the mail for good (5xx), or the mail cannot be made."""


class RelayNotUsable(Exception):
    """The relay cannot be used as configured (its certificate is not trusted, it refused
    our sign-in). Not the mail's fault: it is tried again like a connection failure, so
    the replies wait for an administrator to correct the settings instead of failing."""


def _untrusted_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind an error of aiosmtplib, if that is
    what it is (it wraps the SSL error when connecting, not after STARTTLS)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def build_mail(record: EmailRecord, content: str, settings: dict[str, Any],
               reply_address: str,
               attachments: Sequence[tuple[str, str, bytes]] = ()) -> EmailMessage:
    """The MIME mail of an outbound record: text and HTML alternatives, the signature,
    our signed Message-ID and reply address, the thread headers. Raises ValueError when
    a header value holds a line break (header injection) or cannot be written."""
    mail = EmailMessage(policy=_OUTBOUND_POLICY)
    from_name = safe_header_value(str(settings.get("from_name") or ""))
    mail["From"] = formataddr((from_name, safe_header_value(record.from_address)))
    # Records keep names as written (older ones encoded); the policy's address headers
    # encode a non-ASCII name (RFC 2047) when the mail is written out.
    mail["To"] = ", ".join(safe_header_value(a) for a in record.to_addresses)
    if record.cc_addresses:
        mail["Cc"] = ", ".join(safe_header_value(a) for a in record.cc_addresses)
    mail["Reply-To"] = formataddr((from_name, safe_header_value(reply_address)))
    mail["Subject"] = safe_header_value(record.subject)
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = f"<{safe_header_value(record.header_message_id)}>"
    if record.in_reply_to:
        mail["In-Reply-To"] = f"<{safe_header_value(record.in_reply_to)}>"
    if record.reference_ids:
        mail["References"] = " ".join(f"<{safe_header_value(r)}>" for r in record.reference_ids)
    if record.automatic_kind == "auto-replied":
        # RFC 3834; and Exchange's own auto-replies stay quiet on mail marked like this.
        mail["Auto-Submitted"] = "auto-replied"
        mail["X-Auto-Response-Suppress"] = "All"
    signature = str(settings.get("signature") or "")
    text = content + (f"\n\n-- \n{signature}" if signature else "")
    mail.set_content(text)
    body = "<br>\n".join(html.escape(line) for line in content.split("\n"))
    if signature:
        body += '<br>\n<br>\n<div class="signature">-- <br>\n' + "<br>\n".join(
            html.escape(line) for line in signature.split("\n")) + "</div>"
    mail.add_alternative(f"<!DOCTYPE html><html><body>{body}</body></html>", subtype="html")
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        if not subtype or content_type == "text/html":
            # Sent as bytes: a text part would be re-encoded, which changes the file.
            maintype, subtype = "application", "octet-stream"
        mail.add_attachment(data, maintype=maintype, subtype=subtype,
                            filename=safe_header_value(filename))
    return mail


def attachment_files(data_dir: Path,
                     attachments: list[dict[str, Any]]) -> list[tuple[str, str, bytes]]:
    """(name, type, bytes) of a message's stored attachments, for its mail. Raises
    ValueError when a listed file is missing (the mail would silently lack it)."""
    store = attachment_store(data_dir)
    files = []
    for item in attachments:
        if not item.get("stored") or not isinstance(item.get("sha256"), str):
            continue
        try:
            data = store.read(item["sha256"])
        except OSError as exc:
            raise ValueError(f"the attachment {item.get('filename')!r} is missing") from exc
        files.append((str(item.get("filename") or "attachment"),
                      str(item.get("content_type") or "application/octet-stream"), data))
    return files


class EmailSender(PumpLoop):
    """Sends due outbound mail through the relay, at most `concurrency` at a time."""

    what = "e-mail sender"

    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 read_sessions: async_sessionmaker[AsyncSession], settings: Settings, *,
                 concurrency: int = 4, poll_interval: float = 5.0) -> None:
        super().__init__(poll_interval)
        self._sessions = sessions
        self._read_sessions = read_sessions
        self.settings = settings
        self.concurrency = concurrency
        self.jitter: Callable[[float], float] = lambda ceiling: random.uniform(0, ceiling)
        self._inflight: set[asyncio.Task[None]] = set()

    @property
    def configured(self) -> bool:
        return bool(self.settings.smtp_relay_host)

    async def run_forever(self) -> None:
        if not self.configured:
            log.warning("FRONTDESK_SMTP_RELAY_HOST is not set: e-mail replies stay pending")
            return
        await self._run_rounds()
        if self._inflight:
            _done, pending = await asyncio.wait(set(self._inflight), timeout=5)
            for task in pending:
                task.cancel()

    async def _pump(self) -> float:
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            return self.poll_interval
        async with self._read_sessions() as session:
            due = (await session.execute(
                select(func.min(OutboundEmail.next_attempt_at))
                .where(OutboundEmail.status == OutboundStatus.PENDING.value))).scalar()
        if due is None:
            return self.poll_interval
        wait = (due - utcnow()).total_seconds()
        if wait > 0:
            return min(wait, self.poll_interval)
        jobs = await self.claim(free)
        for job in jobs:
            task = asyncio.create_task(self._deliver(job), name=f"email-{job.outbound_id}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return 0 if jobs else min(1.0, self.poll_interval)

    async def send_due(self) -> int:
        """Claim and send what is due now, waiting for the sends (tests and tooling)."""
        jobs = await self.claim(self.concurrency)
        await asyncio.gather(*(self._deliver(job) for job in jobs))
        return len(jobs)

    async def claim(self, limit: int) -> list[OutboundJob]:
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.smtp_relay_timeout_seconds
                                + LEASE_MARGIN_SECONDS)
        async with self._sessions() as session, session.begin():
            due = (select(OutboundEmail.id)
                   .where(OutboundEmail.status == OutboundStatus.PENDING.value,
                          OutboundEmail.next_attempt_at <= now)
                   .order_by(OutboundEmail.next_attempt_at).limit(limit)
                   .with_for_update(skip_locked=True))
            claimed = (await session.execute(
                update(OutboundEmail).where(OutboundEmail.id.in_(due.scalar_subquery()))
                .values(attempts=OutboundEmail.attempts + 1, next_attempt_at=lease)
                .returning(OutboundEmail.id, OutboundEmail.message_id, OutboundEmail.attempts)
                .execution_options(synchronize_session=False))).all()
            jobs = []
            secret = thread_secret(self.settings)
            for outbound_id, message_id, attempt in claimed:
                row = (await session.execute(
                    select(EmailRecord, Message.content, Inbox.settings, Message.attachments)
                    .join(Message, Message.id == EmailRecord.message_id)
                    .join(Inbox, Inbox.id == EmailRecord.inbox_id)
                    .where(EmailRecord.message_id == message_id))).first()
                if row is None:
                    continue  # the message was deleted meanwhile
                record, content, inbox_settings, listed = row
                recipients = [address for _name, address in map(
                    parseaddr, [*record.to_addresses, *record.cc_addresses]) if address]
                try:
                    reply_address = make_reply_address(record.from_address,
                                                       record.conversation_id, secret)
                    # Off the event loop: a reply may carry up to 20 files of 25 MiB.
                    files = await asyncio.to_thread(attachment_files, self.settings.data_dir,
                                                    listed or [])
                    mail = build_mail(record, content, inbox_settings, reply_address, files)
                except ValueError as exc:
                    jobs.append(OutboundJob(outbound_id, message_id, attempt, None,
                                            record.from_address, recipients,
                                            f"the mail cannot be written: {exc}"))
                    continue
                if not recipients:
                    jobs.append(OutboundJob(outbound_id, message_id, attempt, None,
                                            record.from_address, recipients,
                                            "the conversation has no e-mail address to reply to"))
                    continue
                jobs.append(OutboundJob(outbound_id, message_id, attempt, mail,
                                        record.from_address, recipients))
        return jobs

    async def _deliver(self, job: OutboundJob) -> None:
        try:
            if job.mail is None:
                await self._record(job, sent=False, error=job.error or "unknown", final=True)
                return
            try:
                refused = await self._send(job.mail, job.sender, job.recipients)
            except PermanentFailure as exc:
                await self._record(job, sent=False, error=str(exc), final=True)
                return
            except RelayNotUsable as exc:
                final = job.attempt >= self.settings.email_send_max_attempts
                await self._record(job, sent=False, error=str(exc), final=final)
                return
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                final = job.attempt >= self.settings.email_send_max_attempts
                await self._record(job, sent=False, error=f"{type(exc).__name__}: {exc}",
                                   final=final)
                return
            note = ("refused by the relay: " + "; ".join(
                f"{address}: {code} {text}" for address, (code, text) in refused.items())
            ) if refused else None
            await self._record(job, sent=True, error=note, final=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbound mail %s: recording the attempt failed", job.outbound_id)
        finally:
            self._wake.set()

    async def _send(self, mail: EmailMessage, sender: str,
                    recipients: list[str]) -> dict[str, tuple[int, str]]:
        s = self.settings
        # Verified against the system's CAs and FRONTDESK_SMTP_RELAY_CA_FILE, names checked.
        try:
            context = tls_context(s.smtp_relay_ca_file) if s.smtp_relay_security != "none" \
                else None
        except OSError as exc:  # (ssl.SSLError is one: a file that holds no certificate)
            raise RelayNotUsable(f"FRONTDESK_SMTP_RELAY_CA_FILE {s.smtp_relay_ca_file} "
                                 f"cannot be used: {exc}") from exc
        try:
            # Flattened here, with our policy: aiosmtplib's own would fold long headers.
            errors, _response = await aiosmtplib.send(
                mail.as_bytes(policy=_OUTBOUND_POLICY), sender=sender, recipients=recipients,
                hostname=s.smtp_relay_host, port=s.smtp_relay_port,
                username=s.smtp_relay_username, password=s.smtp_relay_password,
                use_tls=s.smtp_relay_security == "tls",
                start_tls=s.smtp_relay_security == "starttls", tls_context=context,
                timeout=s.smtp_relay_timeout_seconds,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            # (The password is in no message: only the user name and the relay's answer.)
            raise RelayNotUsable(
                f"the relay refused the sign-in as {s.smtp_relay_username!r} "
                f"({exc.code} {exc.message}): check FRONTDESK_SMTP_RELAY_USERNAME and "
                "_PASSWORD") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentFailure("every recipient was refused: " + "; ".join(
                str(r) for r in exc.recipients)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentFailure(f"{exc.code} {exc.message}") from exc
            raise
        except (aiosmtplib.SMTPException, OSError) as exc:
            untrusted = _untrusted_certificate(exc)
            if untrusted is None:
                raise
            raise RelayNotUsable(
                f"the relay's TLS certificate is not trusted ({untrusted.verify_message}); "
                "a relay with a private CA needs FRONTDESK_SMTP_RELAY_CA_FILE") from exc
        return {address: (response.code, response.message)
                for address, response in errors.items()}

    async def _record(self, job: OutboundJob, *, sent: bool, error: str | None,
                      final: bool) -> None:
        now = utcnow()
        async with self._sessions() as session, session.begin():
            if sent:
                await session.execute(update(OutboundEmail)
                                      .where(OutboundEmail.id == job.outbound_id)
                                      .values(status=OutboundStatus.SENT.value, sent_at=now,
                                              last_error=error))
                # A bounce may have come first (a fast relay): "failed" then stays.
                await session.execute(
                    update(Message).where(Message.id == job.message_id,
                                          Message.delivery_status == DeliveryStatus.PENDING.value)
                    .values(delivery_status=DeliveryStatus.SENT.value, delivery_error=error))
            elif final:
                await session.execute(update(OutboundEmail)
                                      .where(OutboundEmail.id == job.outbound_id)
                                      .values(status=OutboundStatus.FAILED.value,
                                              last_error=error))
                await session.execute(
                    update(Message).where(Message.id == job.message_id)
                    .values(delivery_status=DeliveryStatus.FAILED.value,
                            delivery_error=(error or "")[:2000]))
            else:
                ceiling = min(3600.0, self.settings.email_retry_base_seconds
                              * 2 ** min(job.attempt - 1, 20))
                await session.execute(
                    update(OutboundEmail).where(OutboundEmail.id == job.outbound_id)
                    .values(last_error=error,
                            next_attempt_at=now + timedelta(seconds=self.jitter(ceiling))))
        if not sent:
            log.info("outbound mail %s attempt %d failed (%s): %s", job.outbound_id,
                     job.attempt, "final" if final else "will retry", error)
