"""Inbound e-mail into conversations: the one entry point for every way mail arrives.

Contract (the SMTP server here, the IMAP poller and re-processing from quarantine all use it):

    async def receive_email(runtime: Runtime, raw: bytes, *, inbox_id: int | None,
                            envelope_recipients: Sequence[str], source: str,
                            envelope_sender: str | None = None) -> ReceivedEmail

- `inbox_id`: the inbox the mail was fetched for (IMAP), or None to route it by the
  envelope recipients' support addresses (`support+c12.x@example.com` routes as
  `support@example.com`); `NoInboxForRecipients` when no inbox owns any of them.
- Returns only after the transaction that stored it committed. `ReceivedEmail.status`:
  `stored` (a new message), `duplicate` (its Message-ID was already stored in that inbox:
  nothing was written) or `quarantined` (kept whole with the reason, listed for admins
  under GET /api/v1/email/quarantine, re-processable). All three mean "safe to
  acknowledge" (SMTP 250, IMAP flag/move).
- Raises on any failure to store (database refused or unreachable, disk full): the caller
  must NOT acknowledge the mail (SMTP 451: the sender retries; IMAP: leave it unflagged).

What happens to a mail: parsed (`parse_email`, off the event loop); files (attachments,
the raw source) written content-addressed under `<data_dir>`; then one unit of the
group-commit writer (core.writer) threads and stores it through the same intake as every
channel (`conversations.intake.ingest_inbound`, keyed on (inbox, Message-ID)), with its
e-mail record, its participants, and a bounce's effect on our message, in one transaction.

Threading (issue 6): a bounce of one of our messages joins that message's conversation
and marks it failed. Otherwise the conversations named by In-Reply-To/References (stored
Message-IDs of the inbox, and our HMAC-signed ones), then by our signed reply address,
then by the "[#123]" subject token are candidates, in that order; the mail joins the first
one of this inbox whose participants include the sender. A mail that refers to a
conversation the sender takes no part in opens a new conversation, flagged
`thread_note="not_a_participant"`: a forwarded mail or a forged reference never lets a
stranger read or write someone else's thread. Anything else opens a new conversation.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func, insert, literal, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.channels.email.models import (
    AutoAcknowledgement,
    Direction,
    EmailParticipant,
    EmailRecord,
    OutboundEmail,
    OutboundStatus,
    QuarantinedEmail,
    QuarantineReason,
    SupportAddress,
)
from frontdesk.channels.email.parsing import (
    EmailAddress,
    ParsedEmail,
    UnparseableEmail,
    parse_email,
)
from frontdesk.channels.email.storage import attachment_store, raw_mail_store
from frontdesk.channels.email.threads import thread_hints
from frontdesk.channels.models import Inbox
from frontdesk.config import Settings
from frontdesk.contacts.identities import ContactClaim, normalize_email
from frontdesk.conversations.events import MessageCreated
from frontdesk.conversations.intake import (
    InboundMessage,
    IntakeResult,
    ingest_inbound,
    ingest_many,
)
from frontdesk.conversations.models import (
    Conversation,
    DeliveryStatus,
    Message,
    MessageType,
    SenderType,
)
from frontdesk.conversations.schemas import ConversationOut, MessageOut
from frontdesk.core.errors import Conflict, NotFound
from frontdesk.core.events import EventType, OutboxEvent
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.core.writer import InsertRows, insert_later
from frontdesk.db.base import utcnow

if TYPE_CHECKING:
    from frontdesk.runtime import Runtime

log = logging.getLogger(__name__)

ReceivedStatus = Literal["stored", "duplicate", "quarantined"]
# The kinds of automatic mail (channels/email/automatic.py) that intake treats as written
# by a machine: they reopen nothing and open conversations flagged automatic. Not "list":
# a person writing through a mailing list (List-Id) is still a person.
AUTOMATIC_FOR_CONVERSATIONS = frozenset({"bounce", "auto-replied", "auto-generated", "bulk"})
MAX_EXTERNAL_ID = 512  # messages.external_id


class NoInboxForRecipients(NotFound):
    code = "no_inbox_for_recipients"


class RouteChanged(Exception):
    """The address a mail was routed by no longer belongs to that inbox (a cached route
    outlived a change of addresses): nothing was stored; route it again."""

    def __init__(self, address: str | None, inbox_id: int) -> None:
        super().__init__(f"{address!r} no longer routes to inbox {inbox_id}")
        self.address = address
        self.inbox_id = inbox_id


@dataclass(frozen=True)
class ReceivedEmail:
    status: ReceivedStatus
    inbox_id: int
    message_id: int | None = None
    conversation_id: int | None = None
    contact_id: int | None = None
    quarantine_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class InboxRoute:
    workspace_id: int
    inbox_id: int
    addresses: frozenset[str]  # the inbox's support addresses, lower-cased
    auto_acknowledgement: str = ""  # the inbox's automatic answer to new mail; "": none


# --------------------------------------------------------------------------- secrets


@lru_cache(maxsize=8)
def _thread_secret(secret_key: str) -> bytes:
    # A key of its own, derived: the session key signs cookies, this one thread tokens.
    return hmac.new(secret_key.encode(), b"frontdesk e-mail thread tokens",
                    hashlib.sha256).digest()


def thread_secret(settings: Settings) -> bytes:
    """The key of our signed Message-IDs and reply addresses (from the web session key:
    FRONTDESK_SECRET_KEY, else <data_dir>/secret.key)."""
    from frontdesk.web.security import load_secret_key  # the web package imports much

    return _thread_secret(load_secret_key(settings))


# --------------------------------------------------------------------------- routing


def base_address(address: str) -> str:
    """`Support+c12.x@Example.com` → `support@example.com` (plus-addressing stripped)."""
    local, sep, domain = address.strip().strip("<>").rpartition("@")
    if not sep:
        return address.strip().lower()
    return f"{local.partition('+')[0]}@{domain}".lower()


# Routing is asked for every RCPT and every mail: remembered briefly per process. Only
# found routes are kept (a new address works at once). A change of an inbox's addresses
# drops its routes in the process that made it; other processes may route a removed
# address to its former inbox for up to ROUTE_CACHE_SECONDS. That is only ever a guess:
# the writer's unit checks, in the transaction that stores the mail, that the address
# still belongs to the inbox (`_stale_routes`), and a stale route is routed again.
ROUTE_CACHE_SECONDS = 30.0
_route_cache: dict[tuple[str, str], tuple[float, InboxRoute]] = {}


async def route_recipients(runtime: Runtime, recipients: Sequence[str]) -> list[InboxRoute]:
    """The inboxes that own any of `recipients` (each once, in recipient order)."""
    wanted = list(dict.fromkeys(base_address(r) for r in recipients if r))
    database = str(runtime.read_engine.url)
    now = time.monotonic()
    found: dict[str, InboxRoute] = {}
    missing: list[str] = []
    for address in wanted:
        hit = _route_cache.get((database, address))
        if hit is not None and hit[0] > now:
            found[address] = hit[1]
        else:
            missing.append(address)
    if missing:
        for route in await _load_routes(runtime, SupportAddress.inbox_id.in_(
                select(SupportAddress.inbox_id).where(SupportAddress.address.in_(missing)))):
            for address in route.addresses:
                _remember(database, address, route, now)
                if address in missing:
                    found[address] = route
    routes: dict[int, InboxRoute] = {}
    for address in wanted:
        if address in found:
            routes.setdefault(found[address].inbox_id, found[address])
    return list(routes.values())


async def inbox_route(runtime: Runtime, inbox_id: int) -> InboxRoute:
    database = str(runtime.read_engine.url)
    now = time.monotonic()
    hit = _route_cache.get((database, f"#{inbox_id}"))
    if hit is not None and hit[0] > now:
        return hit[1]
    routes = await _load_routes(runtime, SupportAddress.inbox_id == inbox_id)
    if not routes:
        async with runtime.read_sessions() as session:
            disabled = (await session.execute(select(Inbox.disabled_at).where(
                Inbox.id == inbox_id))).scalar_one_or_none()
        if disabled is not None:
            raise Conflict(f"Inbox {inbox_id} is disabled and takes no new messages; an "
                           "admin can enable it again", code="inbox_disabled")
        raise NoInboxForRecipients(f"Inbox {inbox_id} has no support address")
    _remember(database, f"#{inbox_id}", routes[0], now)
    return routes[0]


async def _load_routes(runtime: Runtime, condition: Any) -> list[InboxRoute]:
    async with runtime.read_sessions() as session:
        rows = (await session.execute(
            select(SupportAddress.workspace_id, SupportAddress.inbox_id, SupportAddress.address,
                   Inbox.settings)
            .join(Inbox, Inbox.id == SupportAddress.inbox_id)
            # A disabled inbox receives nothing: its addresses route nowhere (SMTP 550).
            .where(condition, Inbox.disabled_at.is_(None))
        )).all()
    by_inbox: dict[int, list[Any]] = {}
    for row in rows:
        by_inbox.setdefault(row.inbox_id, []).append(row)
    return [InboxRoute(found[0].workspace_id, inbox_id, frozenset(r.address for r in found),
                       str((found[0].settings or {}).get("auto_acknowledgement") or ""))
            for inbox_id, found in by_inbox.items()]


def forget_inbox_routes(inbox_id: int) -> None:
    """Drop this process's remembered routes of an inbox whose settings changed (its
    acknowledgement text, a new address); other processes catch up within
    ROUTE_CACHE_SECONDS."""
    for key, (_, route) in list(_route_cache.items()):
        if route.inbox_id == inbox_id:
            _route_cache.pop(key, None)


def _remember(database: str, key: str, route: InboxRoute, now: float) -> None:
    if len(_route_cache) > 10_000:
        _route_cache.clear()
    _route_cache[(database, key)] = (now + ROUTE_CACHE_SECONDS, route)


# ------------------------------------------------------------------------- receiving


@dataclass
class _Prepared:
    """What the writer's unit needs, all of it worked out before the unit runs."""

    route: InboxRoute
    parsed: ParsedEmail
    sender: str
    secret: bytes
    envelope_recipients: tuple[str, ...]
    attachments: list[dict[str, Any]]
    raw_sha256: str
    source: str
    rate_limit: tuple[int, int] | None  # (mails, window seconds); None: not limited
    auto_reply_interval: timedelta
    raw: bytes
    envelope_sender: str | None
    from_quarantine: int | None = None
    participants: list[EmailAddress] = field(default_factory=list)
    support_address: str | None = None  # which of the inbox's addresses it was sent to
    # Routed by that address (SMTP), through a cache: checked again when it is stored. Not
    # for mail fetched for an inbox (IMAP) or re-processed in the inbox that kept it.
    verify_route: bool = False


async def receive_email(
    runtime: Runtime, raw: bytes, *, inbox_id: int | None, envelope_recipients: Sequence[str],
    source: str, envelope_sender: str | None = None,
) -> ReceivedEmail:
    """Store one mail (see the module docstring for the contract)."""
    if inbox_id is None:
        routes = await route_recipients(runtime, envelope_recipients)
        if not routes:
            raise NoInboxForRecipients("No inbox receives mail for these recipients")
        route = routes[0]
    else:
        route = await inbox_route(runtime, inbox_id)
    return await receive_into_inbox(runtime, route, bytes(raw),
                                    envelope_recipients=envelope_recipients, source=source,
                                    envelope_sender=envelope_sender,
                                    routed_by_address=inbox_id is None)


async def receive_into_inbox(
    runtime: Runtime, route: InboxRoute, raw: bytes, *, envelope_recipients: Sequence[str],
    source: str, envelope_sender: str | None, from_quarantine: int | None = None,
    routed_by_address: bool = True,
) -> ReceivedEmail:
    """Store a mail in the inbox `route` names. `routed_by_address`: the route was found
    for `envelope_recipients` (the SMTP server, `receive_email` without an inbox), so the
    store step checks the addresses still belong to that inbox; if they moved meanwhile
    (to an inbox of another workspace, even), the mail is routed again, once, and goes
    where they belong now. An address that belongs nowhere now raises
    `NoInboxForRecipients`; one that moved twice raises `RouteChanged` (SMTP: 451, and the
    sender's retry is routed afresh)."""
    settings = runtime.settings
    prepared = await asyncio.to_thread(
        _prepare, settings, route, raw, tuple(envelope_recipients), source, envelope_sender,
        from_quarantine)
    if isinstance(prepared, tuple):  # (reason code, reason): cannot become a message
        code, reason = prepared
        return await runtime.writer.submit(_Quarantine(
            route, raw, code, reason, tuple(envelope_recipients), source, envelope_sender,
            from_quarantine))
    prepared.verify_route = routed_by_address
    try:
        return await runtime.writer.submit(EmailIntake(prepared))
    except RouteChanged as stale:
        if not routed_by_address:
            raise
        forget_inbox_routes(route.inbox_id)
        log.info("E-mail: %s; routing the mail again", stale)
    routes = await route_recipients(runtime, envelope_recipients)
    if not routes:
        raise NoInboxForRecipients("No inbox receives mail for these recipients any more")
    results = []
    for fresh in routes:  # the addresses may now belong to several inboxes
        prepared_again = await asyncio.to_thread(
            _prepare, settings, fresh, raw, tuple(envelope_recipients), source,
            envelope_sender, from_quarantine)
        if isinstance(prepared_again, tuple):
            code, reason = prepared_again
            results.append(await runtime.writer.submit(_Quarantine(
                fresh, raw, code, reason, tuple(envelope_recipients), source,
                envelope_sender, from_quarantine)))
            continue
        prepared_again.verify_route = True  # a second move raises RouteChanged: SMTP 451
        results.append(await runtime.writer.submit(EmailIntake(prepared_again)))
    return results[0]


def _prepare(
    settings: Settings, route: InboxRoute, raw: bytes, recipients: tuple[str, ...],
    source: str, envelope_sender: str | None, from_quarantine: int | None,
) -> _Prepared | tuple[str, str]:
    """Parse and write the files (in a worker thread: this is CPU and disk)."""
    try:
        parsed = parse_email(raw, max_attachment_bytes=settings.email_max_attachment_bytes,
                             envelope_sender=envelope_sender)
    except UnparseableEmail as exc:
        return QuarantineReason.UNPARSEABLE.value, exc.reason
    if parsed.from_ is None:
        return QuarantineReason.NO_SENDER.value, "the mail names no sender (From, Sender)"
    try:
        sender = normalize_email(parsed.from_.address)
    except ValueError as exc:
        fallback = _bounce_sender(parsed, route) if parsed.bounce is not None else None
        if fallback is None:
            return (QuarantineReason.NO_SENDER.value,
                    f"the sender {parsed.from_.address[:200]!r} is not an address: {exc}")
        sender = fallback
    files = attachment_store(settings.data_dir)
    attachments: list[dict[str, Any]] = []
    for attachment in parsed.attachments:
        if attachment.content is not None:
            files.put(attachment.content, attachment.sha256)
        attachments.append({
            "filename": attachment.filename, "content_type": attachment.content_type,
            "size": attachment.size, "sha256": attachment.sha256,
            "inline": attachment.inline, "content_id": attachment.content_id,
            "stored": attachment.content is not None,
        })
    raw_sha256 = raw_mail_store(settings.data_dir).put(raw)
    limited = source != "reprocess"
    return _Prepared(
        route=route, parsed=parsed, sender=sender, secret=thread_secret(settings),
        envelope_recipients=recipients, attachments=attachments, raw_sha256=raw_sha256,
        source=source, raw=raw, envelope_sender=envelope_sender,
        rate_limit=(settings.email_rate_limit_count, settings.email_rate_limit_window_seconds)
        if limited else None,
        from_quarantine=from_quarantine,
        auto_reply_interval=timedelta(hours=settings.email_auto_reply_interval_hours),
        participants=[a for a in parsed.participants
                      if base_address(a.address) not in route.addresses and "@" in a.address],
        support_address=addressed_to(route, recipients, parsed),
    )


def addressed_to(route: InboxRoute, envelope_recipients: Sequence[str],
                 parsed: ParsedEmail) -> str | None:
    """Which of the inbox's addresses a mail was sent to: its envelope recipient (SMTP),
    else the first the inbox owns among Delivered-To/X-Original-To, To and Cc (IMAP and
    re-processing, where the envelope may be gone); plus-addressing stripped."""
    for candidate in (*envelope_recipients, *parsed.delivered_to,
                      *(a.address for a in parsed.to), *(a.address for a in parsed.cc)):
        address = base_address(candidate)
        if address in route.addresses:
            return address
    return None


def _bounce_sender(parsed: ParsedEmail, route: InboxRoute) -> str | None:
    """An address for a bounce whose From is a bare `MAILER-DAEMON` (old MTAs send them):
    the mail system of the reporting MTA, else of our own domain. A bounce must still
    reach the conversation of the message it reports on, not the quarantine."""
    domains = []
    if parsed.bounce is not None and parsed.bounce.reporting_mta:
        domains.append(parsed.bounce.reporting_mta.rpartition(";")[2].strip())
    domains.extend(sorted(address.rpartition("@")[2] for address in route.addresses))
    for domain in domains:
        try:
            return normalize_email(f"mailer-daemon@{domain}")
        except ValueError:
            continue
    return None


def external_id_of(message_id: str) -> str:
    """The intake key of a Message-ID: itself, or a digest when too long for the column."""
    if len(message_id) <= MAX_EXTERNAL_ID:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()


def _insert_ignoring_conflicts(conn: Connection, table: Any, rows: list[dict[str, Any]],
                               keys: list[str]) -> None:
    if not rows:
        return
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(dialect_insert(table).on_conflict_do_nothing(index_elements=keys), rows)


def _quarantine_row(conn: Connection, route: InboxRoute, raw: bytes, code: str, reason: str,
                    recipients: Sequence[str], source: str, envelope_sender: str | None,
                    existing: int | None) -> int:
    """The quarantine row of this mail in this inbox: one per (inbox, raw bytes). The same
    mail delivered again (an MTA retrying after a 451, an IMAP message fetched twice, a
    storm repeating itself) keeps its row, with the latest reason, and adds none."""
    if existing is None:
        existing = _quarantined_already(conn, route.inbox_id, raw)
        if existing is not None:
            log.info("Quarantined mail %d (inbox %d) arrived again; kept once",
                     existing, route.inbox_id)
    if existing is not None:  # re-processing failed again: the same row, the new reason
        conn.execute(update(QuarantinedEmail).where(QuarantinedEmail.id == existing)
                     .values(reason_code=code, reason=reason[:2000]))
        return existing
    return int(conn.execute(insert(QuarantinedEmail).values(
        workspace_id=route.workspace_id, inbox_id=route.inbox_id, reason_code=code,
        reason=reason[:2000], raw=raw, size=len(raw),
        envelope_sender=(envelope_sender or "")[:998] or None,
        envelope_recipients=[r[:320] for r in recipients][:100], source=source[:32],
        created_at=utcnow(),
    ).returning(QuarantinedEmail.id)).scalar_one())


def _quarantined_already(conn: Connection, inbox_id: int, raw: bytes) -> int | None:
    """The inbox's waiting (not re-processed) quarantine row holding exactly these bytes.

    The table keeps no digest column, so the bytes themselves are compared, among the
    inbox's rows of the same size. On PostgreSQL several processes take mail at once: a
    transaction-scoped advisory lock on (inbox, SHA-256 of the bytes) makes two deliveries
    of one mail queue here, so the second finds the first's row (SQLite has one writer)."""
    if conn.dialect.name == "postgresql":
        digest = hashlib.sha256(b"%d:" % inbox_id + hashlib.sha256(raw).digest()).digest()
        conn.execute(select(func.pg_advisory_xact_lock(
            int.from_bytes(digest[:8], "big", signed=True))))
    found = conn.execute(
        select(QuarantinedEmail.id).where(
            QuarantinedEmail.inbox_id == inbox_id, QuarantinedEmail.size == len(raw),
            QuarantinedEmail.reprocessed_at.is_(None), QuarantinedEmail.raw == raw)
        .order_by(QuarantinedEmail.id).limit(1)).scalar()
    return None if found is None else int(found)


@dataclass
class _Quarantine:
    """A writer unit: keep a mail that cannot become a message."""

    route: InboxRoute
    raw: bytes
    code: str
    reason: str
    recipients: tuple[str, ...]
    source: str
    envelope_sender: str | None
    existing: int | None

    def __call__(self, conn: Connection) -> ReceivedEmail:
        quarantine_id = _quarantine_row(conn, self.route, self.raw, self.code, self.reason,
                                        self.recipients, self.source, self.envelope_sender,
                                        self.existing)
        return ReceivedEmail("quarantined", self.route.inbox_id, quarantine_id=quarantine_id,
                             reason=self.reason)


class _RunAlone(Exception):
    """A batch of mails that must not run together (see `EmailIntake.together`)."""


_EVENTS = InsertRows(OutboxEvent.__table__, (
    "workspace_id", "type", "payload", "created_at", "available_at", "attempts"))


class EmailIntake:
    """A writer unit: thread one parsed mail and store it (see the module docstring)."""

    def __init__(self, mail: _Prepared) -> None:
        self.mail = mail
        self.external_id = external_id_of(mail.parsed.message_id)
        self.sender_name = mail.parsed.from_.name if mail.parsed.from_ is not None else ""
        # With several writer connections one sender's mail goes through one, in order.
        self.key = (mail.route.workspace_id, mail.sender)

    def __call__(self, conn: Connection) -> ReceivedEmail:
        mail = self.mail
        route = mail.route
        if _stale_routes(conn, [self]):
            raise RouteChanged(mail.support_address, route.inbox_id)
        stored = conn.execute(
            select(Message.id, Message.conversation_id, Message.sender_contact_id)
            .where(Message.inbox_id == route.inbox_id, Message.external_id == self.external_id)
        ).first()
        if stored is not None:
            return self._duplicate(conn, tuple(stored))
        now = utcnow()
        limited = self._rate_limited(conn, now)
        if limited is not None:
            return limited
        conversation_id, note, bounced = self._thread(conn)
        result = ingest_inbound(conn, self._inbound(conversation_id))
        return self._finish(conn, result, conversation_id, note, bounced, now)

    @staticmethod
    def together(conn: Connection, units: list[EmailIntake]) -> list[ReceivedEmail]:
        """A batch of mails with one statement for their repeats and one intake call
        (`ingest_many`) for all of them. Mails that depend on each other (one sender
        twice: the rate limit counts them in order; one answering another of the batch:
        it must find it stored) are refused here, and the writer then runs each alone."""
        keys = [(u.mail.route.inbox_id, u.external_id) for u in units]
        senders = [(u.mail.route.inbox_id, u.mail.sender) for u in units]
        in_batch = {external_id for _, external_id in keys}
        if (len(set(keys)) < len(keys) or len(set(senders)) < len(senders)
                or any(u.refers_to(in_batch) for u in units)):
            raise _RunAlone("mails of this batch depend on each other")
        if _stale_routes(conn, units):  # each alone: the stale one fails, the rest go in
            raise _RunAlone("a mail of this batch was routed by an address that moved")
        stored = {
            (row.inbox_id, row.external_id): (row.id, row.conversation_id,
                                              row.sender_contact_id)
            for row in conn.execute(
                select(Message.inbox_id, Message.external_id, Message.id,
                       Message.conversation_id, Message.sender_contact_id)
                .where(tuple_(Message.inbox_id, Message.external_id).in_(keys)))
        }
        now = utcnow()
        results: list[ReceivedEmail | None] = [None] * len(units)
        todo: list[tuple[int, int | None, str | None, int | None]] = []
        for index, unit in enumerate(units):
            found = stored.get(keys[index])
            if found is not None:
                results[index] = unit._duplicate(conn, found)
                continue
            results[index] = unit._rate_limited(conn, now)
            if results[index] is None:
                todo.append((index, *unit._thread(conn)))
        ingested = ingest_many(conn, [units[i]._inbound(cid) for i, cid, _, _ in todo])
        for (index, conversation_id, note, bounced), result in zip(todo, ingested, strict=True):
            results[index] = units[index]._finish(conn, result, conversation_id, note,
                                                  bounced, now)
        return [r for r in results if r is not None]

    def refers_to(self, external_ids: set[str]) -> bool:
        parsed = self.mail.parsed
        named = [*parsed.thread_ids[:100]]
        if parsed.bounce is not None and parsed.bounce.original_message_id:
            named.append(parsed.bounce.original_message_id)
        return any(external_id_of(mid) in external_ids for mid in named)

    def _duplicate(self, conn: Connection, stored: tuple[Any, ...]) -> ReceivedEmail:
        message_id, conversation_id, contact_id = stored
        if self.mail.from_quarantine is not None:
            self._mark_reprocessed(conn, message_id)
        return ReceivedEmail("duplicate", self.mail.route.inbox_id, message_id,
                             conversation_id, contact_id)

    def _rate_limited(self, conn: Connection, now: datetime) -> ReceivedEmail | None:
        mail = self.mail
        if mail.rate_limit is None:
            return None
        limit, window = mail.rate_limit
        recent = conn.execute(
            select(func.count()).select_from(EmailRecord).where(
                EmailRecord.inbox_id == mail.route.inbox_id,
                EmailRecord.from_address == mail.sender,
                EmailRecord.created_at >= now - timedelta(seconds=window),
            )
        ).scalar_one()
        if recent < limit:
            return None
        reason = (f"{mail.sender} sent more than {limit} mails within {window} s "
                  "(mail storm protection)")
        quarantine_id = _quarantine_row(
            conn, mail.route, mail.raw, QuarantineReason.RATE_LIMITED.value, reason,
            mail.envelope_recipients, mail.source, mail.envelope_sender, None)
        return ReceivedEmail("quarantined", mail.route.inbox_id, quarantine_id=quarantine_id,
                             reason=reason)

    def _inbound(self, conversation_id: int | None) -> InboundMessage:
        mail = self.mail
        parsed = mail.parsed
        return InboundMessage(
            workspace_id=mail.route.workspace_id, inbox_id=mail.route.inbox_id,
            external_id=self.external_id,
            contact=ContactClaim(name=self.sender_name or None, email=mail.sender),
            content=parsed.new_text or parsed.text, content_html=parsed.html_sanitized,
            subject=parsed.subject or None, attachments=mail.attachments,
            conversation_id=conversation_id, new_conversation=conversation_id is None,
            automatic=parsed.automatic_kind in AUTOMATIC_FOR_CONVERSATIONS,
        )

    def _finish(self, conn: Connection, result: IntakeResult, conversation_id: int | None,
                note: str | None, bounced: int | None, now: datetime) -> ReceivedEmail:
        """The e-mail side of a stored message: its record, its participants, a bounce's
        effect on our message, the acknowledgement."""
        mail = self.mail
        parsed = mail.parsed
        route = mail.route
        if not result.created:  # stored meanwhile by another process
            return ReceivedEmail("duplicate", route.inbox_id, result.message_id,
                                 result.conversation_id, result.contact_id)
        conn.execute(insert(EmailRecord).values(
            message_id=result.message_id, workspace_id=route.workspace_id,
            inbox_id=route.inbox_id, conversation_id=result.conversation_id,
            direction=Direction.INBOUND.value, header_message_id=parsed.message_id[:998],
            subject=parsed.subject[:998], from_address=mail.sender,
            from_name=self.sender_name[:320], support_address=mail.support_address,
            to_addresses=[a.readable for a in parsed.to][:100],
            cc_addresses=[a.readable for a in parsed.cc][:100],
            in_reply_to=(parsed.in_reply_to or "")[:998] or None,
            reference_ids=list(parsed.references), text=parsed.text,
            quoted_text=parsed.quoted_text, automatic_kind=parsed.automatic_kind,
            automatic_reason=parsed.automatic_reason, is_bounce=parsed.is_bounce,
            thread_note=note, defects=list(parsed.defects),
            forwarded=[f.as_json() for f in parsed.forwarded], raw_sha256=mail.raw_sha256,
            source=mail.source[:32], created_at=now,
        ))
        _insert_ignoring_conflicts(conn, EmailParticipant.__table__, [
            {"conversation_id": result.conversation_id, "address": address,
             "workspace_id": route.workspace_id, "name": name[:320], "created_at": now}
            for address, name in dict(
                (a.address.lower()[:320], a.name) for a in mail.participants).items()
        ], ["conversation_id", "address"])
        if bounced is not None and parsed.bounce is not None:
            reason = parsed.bounce.reason[:2000]
            conn.execute(update(Message).where(Message.id == bounced).values(
                delivery_status=DeliveryStatus.FAILED.value, delivery_error=reason))
            conn.execute(update(OutboundEmail).where(OutboundEmail.message_id == bounced)
                         .values(status=OutboundStatus.FAILED.value, last_error=reason))
            # Automatic mail leaves the conversation's state alone, but a failed delivery
            # needs an agent: the bounce makes the conversation unread (not reopened).
            conn.execute(update(Conversation).where(
                Conversation.id == result.conversation_id).values(
                last_incoming_at=select(Message.created_at).where(
                    Message.id == result.message_id).scalar_subquery()))
        if conversation_id is None and self._may_acknowledge(conn, now):
            self._acknowledge(conn, result.conversation_id, now)
        if mail.from_quarantine is not None:
            self._mark_reprocessed(conn, result.message_id)
        return ReceivedEmail("stored", route.inbox_id, result.message_id,
                             result.conversation_id, result.contact_id)

    def _may_acknowledge(self, conn: Connection, now: datetime) -> bool:
        """RFC 3834: never to automatic mail (or mail asking for none), never to ourselves,
        at most once per sender per interval."""
        mail = self.mail
        if not mail.route.auto_acknowledgement or not mail.parsed.should_auto_reply:
            return False
        if base_address(mail.sender) in mail.route.addresses:
            return False
        last = conn.execute(select(AutoAcknowledgement.sent_at).where(
            AutoAcknowledgement.inbox_id == mail.route.inbox_id,
            AutoAcknowledgement.address == mail.sender)).scalar()
        return last is None or last <= now - mail.auto_reply_interval

    def _acknowledge(self, conn: Connection, conversation_id: int, now: datetime) -> None:
        """The inbox's acknowledgement, as a bot's outgoing message of the new conversation:
        the outbound listener sends it like an agent's reply, marked `Auto-Submitted:
        auto-replied` and to the sender alone."""
        route = self.mail.route
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = dialect_insert(AutoAcknowledgement).values(
            inbox_id=route.inbox_id, address=self.mail.sender,
            workspace_id=route.workspace_id, sent_at=now)
        conn.execute(statement.on_conflict_do_update(
            index_elements=["inbox_id", "address"], set_={"sent_at": now}))
        message = conn.execute(insert(Message).values(
            workspace_id=route.workspace_id, conversation_id=conversation_id,
            inbox_id=route.inbox_id, message_type=MessageType.OUTGOING.value,
            sender_type=SenderType.BOT.value, content=route.auto_acknowledgement,
            attachments=[], delivery_status=DeliveryStatus.PENDING.value, created_at=now,
        ).returning(*Message.__table__.c)).one()
        conversation = conn.execute(select(*Conversation.__table__.c).where(
            Conversation.id == conversation_id)).one()
        payload = MessageCreated(message=MessageOut.model_validate(dict(message._mapping)),
                                 conversation=ConversationOut.model_validate(
                                     dict(conversation._mapping)))
        # After the inbound message's own events (the writer inserts those at the commit).
        insert_later(conn, _EVENTS, {
            "workspace_id": route.workspace_id, "type": EventType.MESSAGE_CREATED.value,
            "payload": payload.model_dump(mode="json"), "created_at": now,
            "available_at": now, "attempts": 0})

    def _mark_reprocessed(self, conn: Connection, message_id: int) -> None:
        conn.execute(update(QuarantinedEmail)
                     .where(QuarantinedEmail.id == self.mail.from_quarantine)
                     .values(reprocessed_at=utcnow(), message_id=message_id))

    def _thread(self, conn: Connection) -> tuple[int | None, str | None, int | None]:
        """(conversation to join or None for a new one, why a named one was not joined,
        our outbound message a bounce reports as failed)."""
        mail = self.mail
        parsed = mail.parsed
        inbox_id = mail.route.inbox_id
        bounce = parsed.bounce
        if bounce is not None and bounce.original_message_id:
            ours = conn.execute(
                select(Message.id, Message.conversation_id).where(
                    Message.inbox_id == inbox_id,
                    Message.external_id == external_id_of(bounce.original_message_id),
                    Message.message_type == MessageType.OUTGOING.value,
                )
            ).first()
            if ours is not None:
                return ours.conversation_id, None, ours.id if parsed.is_bounce else None

        hints = thread_hints(parsed, secret=mail.secret, recipients=mail.envelope_recipients)
        candidates: list[int] = []
        if hints.thread_ids:
            wanted = [external_id_of(mid) for mid in hints.thread_ids[:100]]
            found = dict(conn.execute(
                select(Message.external_id, Message.conversation_id).where(
                    Message.inbox_id == inbox_id, Message.external_id.in_(wanted))
            ).tuples().all())
            candidates.extend(found[mid] for mid in wanted if mid in found)
        candidates.extend(hints.signed_conversation_ids)
        if hints.reply_address_conversation_id is not None:
            candidates.append(hints.reply_address_conversation_id)
        if hints.subject_conversation_id is not None:
            candidates.append(hints.subject_conversation_id)
        note: str | None = None
        for named in dict.fromkeys(candidates):
            conversation_id = _surviving_conversation(conn, named, inbox_id)
            if conversation_id is None:
                continue
            if _is_participant(conn, conversation_id, mail.sender):
                return conversation_id, None, None
            note = "not_a_participant"
        return None, note, None


def _stale_routes(conn: Connection, units: Sequence[EmailIntake]) -> list[EmailIntake]:
    """The units routed by an address that no longer belongs to their inbox: one indexed
    lookup for the batch. On PostgreSQL the rows are share-locked until the commit, so an
    admin cannot move an address between this check and the mail being stored."""
    checked = [u for u in units if u.mail.verify_route]
    if not checked:
        return []
    addresses = sorted({u.mail.support_address for u in checked if u.mail.support_address})
    query = select(SupportAddress.address, SupportAddress.inbox_id).where(
        SupportAddress.address.in_(addresses))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    owners = dict(conn.execute(query).tuples().all()) if addresses else {}
    return [u for u in checked
            if u.mail.support_address is None
            or owners.get(u.mail.support_address) != u.mail.route.inbox_id]


def _surviving_conversation(conn: Connection, conversation_id: int,
                            inbox_id: int) -> int | None:
    """The conversation of the inbox a reference names, following merges (an agent may
    have merged it into another since we wrote the reference); None if there is none."""
    for _ in range(10):  # a merge chain is short; never loop on bad data
        row = conn.execute(select(Conversation.merged_into_id).where(
            Conversation.id == conversation_id, Conversation.inbox_id == inbox_id)).first()
        if row is None:
            return None
        if row.merged_into_id is None:
            return conversation_id
        conversation_id = row.merged_into_id
    return None


def merged_conversations(conversation_id: int) -> Any:
    """The conversation and those merged into it: its participants are all of theirs."""
    return select(Conversation.id).where(Conversation.merged_into_id == conversation_id) \
        .union(select(literal(conversation_id)))


def _is_participant(conn: Connection, conversation_id: int, address: str) -> bool:
    return conn.execute(select(EmailParticipant.address).where(
        EmailParticipant.conversation_id.in_(merged_conversations(conversation_id)),
        EmailParticipant.address == address).limit(1)).first() is not None


# ---------------------------------------------------------------------- quarantine


async def reprocess_quarantined(runtime: Runtime, workspace_id: int,
                                quarantine_id: int) -> ReceivedEmail:
    """Run a quarantined mail through intake again (after a fix, or to let a rate-limited
    one in: re-processing is not rate-limited). Stored: the row records the message."""
    async with runtime.read_sessions() as session:
        row = (await session.execute(select(QuarantinedEmail).where(
            QuarantinedEmail.id == quarantine_id,
            QuarantinedEmail.workspace_id == workspace_id))).scalar_one_or_none()
        if row is None:
            raise NotFound(f"Quarantined mail {quarantine_id} was not found")
        raw, inbox_id = row.raw, row.inbox_id
        recipients, sender = list(row.envelope_recipients), row.envelope_sender
        done = row.reprocessed_at is not None
    if done:
        raise Conflict("This mail was already re-processed", code="already_reprocessed")
    route = await inbox_route(runtime, inbox_id)
    return await receive_into_inbox(runtime, route, raw, envelope_recipients=recipients,
                                    source="reprocess", envelope_sender=sender,
                                    from_quarantine=quarantine_id, routed_by_address=False)


# -------------------------------------------------------------------- reading (API)


async def list_quarantine(session: AsyncSession, principal: Principal, *,
                          include_reprocessed: bool, limit: int) -> list[QuarantinedEmail]:
    principal.require(Role.ADMIN)
    stmt = select(QuarantinedEmail).where(QuarantinedEmail.workspace_id == principal.workspace_id)
    if not include_reprocessed:
        stmt = stmt.where(QuarantinedEmail.reprocessed_at.is_(None))
    rows = await session.execute(stmt.order_by(QuarantinedEmail.id.desc()).limit(limit))
    return list(rows.scalars())


async def get_quarantined(session: AsyncSession, principal: Principal,
                          quarantine_id: int) -> QuarantinedEmail:
    principal.require(Role.ADMIN)
    return await get_in_workspace(session, QuarantinedEmail, principal.workspace_id,
                                  quarantine_id, what="Quarantined mail")


async def get_email_record(session: AsyncSession, principal: Principal,
                           message_id: int) -> EmailRecord:
    message = await get_in_workspace(session, Message, principal.workspace_id, message_id,
                                     what="Message")
    record = await session.get(EmailRecord, message.id)
    if record is None:
        raise NotFound(f"Message {message_id} is not an e-mail", code="not_an_email")
    return record


@dataclass(frozen=True)
class AttachmentFile:
    path: Path
    filename: str
    content_type: str


# Served inline (as <img>) only these: never SVG (it runs script) nor anything HTML-like.
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


async def get_attachment(session: AsyncSession, principal: Principal, data_dir: Path,
                         message_id: int, index: int) -> AttachmentFile:
    message = await get_in_workspace(session, Message, principal.workspace_id, message_id,
                                     what="Message")
    attachments = message.attachments or []
    if not 0 <= index < len(attachments):
        raise NotFound(f"Message {message_id} has no attachment {index}")
    item = attachments[index]
    sha256 = item.get("sha256") if isinstance(item, dict) else None
    if not isinstance(sha256, str) or not item.get("stored"):
        raise NotFound(f"Attachment {index} of message {message_id} was not stored "
                       "(over the size limit)", code="attachment_not_stored")
    store = attachment_store(data_dir)
    try:
        path = store.path_of(sha256)
    except ValueError as exc:
        raise NotFound(f"Attachment {index} of message {message_id} was not found") from exc
    if not path.is_file():
        raise NotFound(f"Attachment {index} of message {message_id} was not found")
    return AttachmentFile(path, str(item.get("filename") or "attachment"),
                          str(item.get("content_type") or "application/octet-stream"))


async def get_raw_source(session: AsyncSession, principal: Principal, data_dir: Path,
                         message_id: int) -> Path:
    record = await get_email_record(session, principal, message_id)
    if record.raw_sha256 is None:
        raise NotFound(f"Message {message_id} has no stored source")
    path = raw_mail_store(data_dir).path_of(record.raw_sha256)
    if not path.is_file():
        raise NotFound(f"The source of message {message_id} was not found")
    return path


async def email_records(session: AsyncSession, principal: Principal,
                        message_ids: Sequence[int]) -> dict[int, EmailRecord]:
    """The e-mail side of those of the messages that have one (the workspace's only)."""
    if not message_ids:
        return {}
    rows = (await session.execute(select(EmailRecord).where(
        EmailRecord.workspace_id == principal.workspace_id,
        EmailRecord.message_id.in_(list(message_ids))))).scalars()
    return {r.message_id: r for r in rows}


_DATA_CID = re.compile(r'\sdata-cid="([^"]*)"')
# A mail's inline pictures go into its frame's document as data: URLs, up to these sizes.
INLINE_PICTURE_LIMIT = 5 * 1024 * 1024
INLINE_PICTURES_TOTAL = 20 * 1024 * 1024


async def get_email_html(session: AsyncSession, principal: Principal, data_dir: Path,
                         message_id: int) -> str:
    """A mail's sanitized HTML as a document of its own, for a frame sandboxed without
    same-origin. Its `cid:` pictures (PNG, JPEG, GIF, WebP) are embedded as data: URLs:
    such a frame has an opaque origin, so the browser sends no session cookie with its
    requests and a link to the attachment route would load nothing."""
    message = await get_in_workspace(session, Message, principal.workspace_id, message_id,
                                     what="Message")
    if await session.get(EmailRecord, message.id) is None:
        raise NotFound(f"Message {message_id} is not an e-mail", code="not_an_email")
    if not message.content_html:
        raise NotFound(f"Message {message_id} has no HTML version", code="no_html")
    store = attachment_store(data_dir)
    pictures: dict[str, str] = {}
    total = 0
    for item in message.attachments or []:
        if not (isinstance(item, dict) and item.get("content_id") and item.get("stored")
                and item.get("content_type") in INLINE_IMAGE_TYPES
                and isinstance(item.get("sha256"), str)):
            continue
        size = int(item.get("size") or 0)
        if size > INLINE_PICTURE_LIMIT or total + size > INLINE_PICTURES_TOTAL:
            continue
        try:
            data = await asyncio.to_thread(store.read, item["sha256"])
        except (OSError, ValueError):
            continue  # a missing file shows as a missing picture, not an error
        total += len(data)
        pictures[str(item["content_id"])] = (
            f"data:{item['content_type']};base64,{base64.b64encode(data).decode('ascii')}")

    def embed(m: re.Match[str]) -> str:
        url = pictures.get(html.unescape(m.group(1)))
        return f' src="{url}"' if url else ""

    body = _DATA_CID.sub(embed, message.content_html)
    return ('<!DOCTYPE html><html><head><meta charset="utf-8">'
            '<meta name="referrer" content="no-referrer"></head>'
            f"<body>{body}</body></html>")
