"""IMAP mailboxes of e-mail inboxes: the admin's settings (the only place that changes
them) and the poller's bookkeeping: its lease, its progress, its errors.

Every write of the poller is conditional on still holding the lease, so a process that
stalled past its lease (and was replaced) can never move another poller's progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.channels.email.imap import ImapError, ImapRefused, check_host
from frontdesk.channels.email.imap_models import AfterImport, ImapMailbox, TlsMode
from frontdesk.channels.email.imap_schemas import ImapSettingsIn, ImapSettingsOut
from frontdesk.channels.models import ChannelType, Inbox
from frontdesk.core.activity import record_activity
from frontdesk.core.errors import InvalidInput, NotFound
from frontdesk.core.secrets import SecretBox
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.db.base import utcnow

# Changing any of these points the inbox at another mailbox: its UIDs mean nothing there.
_WHERE_FIELDS = ("host", "port", "username", "mailbox")


class LeaseLost(Exception):
    """Another process polls this mailbox now (our lease ran out, or it was disabled)."""


async def _email_inbox(session: AsyncSession, principal: Principal, inbox_id: int) -> Inbox:
    inbox = await get_in_workspace(session, Inbox, principal.workspace_id, inbox_id,
                                   what="Inbox")
    if inbox.channel != ChannelType.EMAIL.value:
        raise InvalidInput(
            f"Inbox {inbox_id} is a '{inbox.channel}' inbox; IMAP is for e-mail inboxes",
            code="not_an_email_inbox")
    return inbox


async def configure_imap(
    session: AsyncSession, principal: Principal, inbox_id: int, data: ImapSettingsIn, *,
    box: SecretBox, allow_private: bool,
) -> ImapMailbox:
    """Set (create or replace) the inbox's IMAP mailbox. The host is checked now, like a
    webhook URL, and again at every connection (a name may resolve differently later)."""
    principal.require(Role.ADMIN)
    inbox = await _email_inbox(session, principal, inbox_id)
    try:
        await check_host(data.host, data.port, allow_private)
    except ImapRefused as exc:
        raise InvalidInput(str(exc), code="unsafe_host", details=[
            {"field": "body.host", "message": str(exc), "type": "unsafe_host"}]) from exc
    except ImapError as exc:
        raise InvalidInput(str(exc), code="unresolvable_host", details=[
            {"field": "body.host", "message": str(exc), "type": "unresolvable_host"}]) from exc
    mailbox = (await session.execute(
        select(ImapMailbox).where(ImapMailbox.inbox_id == inbox.id,
                                  ImapMailbox.workspace_id == principal.workspace_id)
    )).scalar_one_or_none()
    values = {
        "host": data.host, "port": data.port, "tls": TlsMode(data.tls).value,
        "username": data.username, "mailbox": data.mailbox, "enabled": data.enabled,
        "after_import": AfterImport(data.after_import).value,
        "move_to": data.move_to if data.after_import == AfterImport.MOVE.value else None,
    }
    if mailbox is None:
        if data.password is None:
            raise InvalidInput("The first IMAP settings of an inbox need the password",
                               details=[{"field": "body.password",
                                         "message": "required the first time"}])
        mailbox = ImapMailbox(workspace_id=principal.workspace_id, inbox_id=inbox.id,
                              password_encrypted=box.encrypt(data.password), **values)
        session.add(mailbox)
        await session.flush()
        changes: dict[str, object] = {k: v for k, v in values.items()}
        action = "inbox.imap_configured"
    else:
        changes = {k: [getattr(mailbox, k), v] for k, v in values.items()
                   if getattr(mailbox, k) != v}
        if any(k in changes for k in _WHERE_FIELDS):
            # Another mailbox: start from its first message (Message-IDs already stored
            # are recognised and not stored twice).
            mailbox.uidvalidity = None
            mailbox.last_uid = 0
        for key, value in values.items():
            setattr(mailbox, key, value)
        if data.password is not None:
            mailbox.password_encrypted = box.encrypt(data.password)
            changes["password_changed"] = True  # never the value, not even in the log
        if changes:
            mailbox.config_version += 1
            mailbox.last_error = None
            mailbox.last_error_at = None
            mailbox.failures = 0
        action = "inbox.imap_changed"
    if changes:
        record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                        actor_id=principal.user_id, action=action, subject_type="inbox",
                        subject_id=inbox.id, changes=changes)
    return mailbox


async def get_imap(session: AsyncSession, principal: Principal, inbox_id: int) -> ImapMailbox:
    principal.require(Role.ADMIN)
    inbox = await _email_inbox(session, principal, inbox_id)
    mailbox = (await session.execute(
        select(ImapMailbox).where(ImapMailbox.inbox_id == inbox.id,
                                  ImapMailbox.workspace_id == principal.workspace_id)
    )).scalar_one_or_none()
    if mailbox is None:
        raise NotFound(f"Inbox {inbox_id} has no IMAP mailbox configured",
                       code="imap_not_configured")
    return mailbox


def imap_out(mailbox: ImapMailbox, now: datetime | None = None) -> ImapSettingsOut:
    now = now or utcnow()
    polling = bool(mailbox.lease_owner and mailbox.lease_until and mailbox.lease_until > now)
    fields = {name: getattr(mailbox, name) for name in ImapSettingsOut.model_fields
              if name != "polling"}
    return ImapSettingsOut(**fields, polling=polling)


# --- the poller's bookkeeping ---------------------------------------------------------------


@dataclass(frozen=True)
class MailboxToPoll:
    """What a poller needs, read once per connection (the password decrypted only then)."""

    id: int
    workspace_id: int
    inbox_id: int
    host: str
    port: int
    tls: TlsMode
    username: str
    password_encrypted: str
    mailbox: str
    after_import: AfterImport
    move_to: str | None
    config_version: int
    uidvalidity: int | None
    last_uid: int
    failures: int


async def enabled_mailboxes(session: AsyncSession) -> list[tuple[int, int, str | None,
                                                                datetime | None]]:
    """(id, config_version, lease_owner, lease_until) of every enabled mailbox of an inbox
    that is not disabled (the pollers stop a mailbox that leaves this list)."""
    rows = await session.execute(
        select(ImapMailbox.id, ImapMailbox.config_version, ImapMailbox.lease_owner,
               ImapMailbox.lease_until)
        .join(Inbox, Inbox.id == ImapMailbox.inbox_id)
        .where(ImapMailbox.enabled.is_(True), Inbox.disabled_at.is_(None))
        .order_by(ImapMailbox.id))
    return [(r[0], r[1], r[2], r[3]) for r in rows.all()]


async def claim_lease(session: AsyncSession, mailbox_id: int, owner: str,
                      seconds: float) -> bool:
    """Take or renew the mailbox's lease: only if it is enabled and nobody else holds a
    lease that is still running. One UPDATE, so two processes never both win."""
    now = utcnow()
    result = await session.execute(
        update(ImapMailbox)
        .where(ImapMailbox.id == mailbox_id, ImapMailbox.enabled.is_(True),
               or_(ImapMailbox.lease_owner.is_(None), ImapMailbox.lease_owner == owner,
                   ImapMailbox.lease_until.is_(None), ImapMailbox.lease_until < now))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release_lease(session: AsyncSession, mailbox_id: int, owner: str) -> None:
    await session.execute(
        update(ImapMailbox)
        .where(ImapMailbox.id == mailbox_id, ImapMailbox.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False))


async def load_for_polling(session: AsyncSession, mailbox_id: int) -> MailboxToPoll | None:
    row = await session.get(ImapMailbox, mailbox_id)
    if row is None or not row.enabled:
        return None
    return MailboxToPoll(
        id=row.id, workspace_id=row.workspace_id, inbox_id=row.inbox_id, host=row.host,
        port=row.port, tls=TlsMode(row.tls), username=row.username,
        password_encrypted=row.password_encrypted, mailbox=row.mailbox,
        after_import=AfterImport(row.after_import), move_to=row.move_to,
        config_version=row.config_version, uidvalidity=row.uidvalidity,
        last_uid=row.last_uid, failures=row.failures)


async def _update_leased(session: AsyncSession, mailbox_id: int, owner: str,
                         config_version: int, **values: object) -> None:
    result = await session.execute(
        update(ImapMailbox)
        .where(ImapMailbox.id == mailbox_id, ImapMailbox.lease_owner == owner,
               ImapMailbox.config_version == config_version)
        .values(**values).execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(f"IMAP mailbox {mailbox_id} is no longer ours, or was changed")


async def record_uidvalidity(session: AsyncSession, mailbox: MailboxToPoll, owner: str,
                             uidvalidity: int) -> None:
    """A first or a changed UIDVALIDITY: UIDs start over, so does our progress."""
    await _update_leased(session, mailbox.id, owner, mailbox.config_version,
                         uidvalidity=uidvalidity, last_uid=0)


async def record_progress(session: AsyncSession, mailbox: MailboxToPoll, owner: str, *,
                          uidvalidity: int, last_uid: int, imported: int) -> None:
    values: dict[str, object] = {"last_uid": last_uid, "last_polled_at": utcnow(),
                                 "last_error": None, "last_error_at": None, "failures": 0}
    if imported:
        values["imported_count"] = ImapMailbox.imported_count + imported
    await _update_leased(session, mailbox.id, owner, mailbox.config_version,
                         uidvalidity=uidvalidity, **values)


async def record_refused(session: AsyncSession, mailbox: MailboxToPoll, owner: str, *,
                         uid: int, size: int, limit: int) -> None:
    """A mail over the size limit: left on the server unread, reported on the mailbox and
    in the activity log (admins decide: raise the limit, or deal with it by hand)."""
    note = (f"UID {uid} of {mailbox.mailbox!r} is {size} bytes, over the limit of {limit}; "
            "left on the server, not downloaded")
    await _update_leased(session, mailbox.id, owner, mailbox.config_version,
                         refused_count=ImapMailbox.refused_count + 1, last_refused=note)
    record_activity(session, workspace_id=mailbox.workspace_id, actor_type="system",
                    actor_id=None, action="email.refused_oversize", subject_type="inbox",
                    subject_id=mailbox.inbox_id,
                    changes={"source": "imap", "uid": uid, "size": size, "limit": limit})


async def record_failure(session: AsyncSession, mailbox_id: int, owner: str,
                         error: str, *, config_version: int | None) -> int:
    """Note the error; returns how many failed in a row (for the backoff). An error of
    settings that were replaced meanwhile is not written over the new ones' state."""
    row = await session.get(ImapMailbox, mailbox_id)
    if row is None or row.lease_owner != owner:
        raise LeaseLost(f"IMAP mailbox {mailbox_id} is no longer ours")
    if config_version is not None and row.config_version != config_version:
        raise LeaseLost(f"IMAP mailbox {mailbox_id} was changed")
    row.failures += 1
    row.last_error = error[:2000]
    row.last_error_at = utcnow()
    row.last_polled_at = row.last_error_at
    return row.failures
