"""Inboxes: the only place that creates and changes them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.channels.email.models import SupportAddress
from frontdesk.channels.email.service import forget_inbox_routes
from frontdesk.channels.events import InboxEvent
from frontdesk.channels.models import ChannelType, Inbox
from frontdesk.channels.schemas import InboxOut
from frontdesk.contacts.identities import normalize_email
from frontdesk.core.activity import record_activity
from frontdesk.core.errors import Conflict, InvalidInput
from frontdesk.core.events import EventType, record_event
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.db.base import utcnow

INBOX_CACHE_SECONDS = 30.0
# Keyed by database too: one process may talk to several (the test suite does), and an
# entry says "this workspace has this inbox", which must never leak from one to another.
_channel_cache: dict[tuple[str, int, int], tuple[float, str, bool]] = {}


def _support_address(email: str, field: str = "body.email") -> str:
    """The address normalised, or 422 `invalid_email` (naming `field`)."""
    try:
        address = normalize_email(email)
    except ValueError as exc:
        raise InvalidInput("Not an e-mail address", code="invalid_email",
                           details=[{"field": field, "message": str(exc)}]) from exc
    if "+" in address.partition("@")[0]:
        # Plus-addressed replies (support+c12.x@) route to the plain address.
        raise InvalidInput("A support address cannot contain '+'", code="invalid_email",
                           details=[{"field": field, "message": "contains '+'"}])
    return address


def _support_addresses(addresses: list[str], field: str) -> list[str]:
    """Each address normalised (422 `invalid_email` naming its index), repeats dropped."""
    return list(dict.fromkeys(_support_address(address, f"{field}.{index}")
                              for index, address in enumerate(addresses)))


async def _free_addresses(session: AsyncSession, inbox_id: int | None,
                          addresses: list[str]) -> list[str]:
    """Those of `addresses` no inbox owns yet (the inbox `inbox_id` may own the others).
    An address another inbox (of any workspace) owns answers 409 `email_address_taken`:
    mail for an address must route to exactly one inbox. Checked before anything is
    written: a web form that shows the refusal still commits its request."""
    owners = dict((await session.execute(
        select(SupportAddress.address, SupportAddress.inbox_id)
        .where(SupportAddress.address.in_(addresses)))).tuples().all())
    if any(owner != inbox_id for owner in owners.values()):
        raise Conflict("Another inbox already receives mail for this address",
                       code="email_address_taken")
    return [address for address in addresses if address not in owners]


async def _claim(session: AsyncSession, inbox: Inbox, addresses: list[str]) -> None:
    for address in addresses:
        session.add(SupportAddress(workspace_id=inbox.workspace_id, inbox_id=inbox.id,
                                   address=address))
    await session.flush()


async def create_inbox(
    session: AsyncSession, principal: Principal, *, name: str, channel: str,
    email: str | None = None, addresses: list[str] | None = None,
    from_name: str | None = None, signature: str | None = None,
    auto_acknowledgement: str | None = None,
) -> Inbox:
    """A new inbox. An e-mail inbox receives mail for its support address `email` (the
    primary: replies come from it unless the customer wrote to another) and for the other
    `addresses`. It claims them: an address another inbox owns (in any workspace) answers
    409 `email_address_taken`."""
    principal.require(Role.ADMIN)
    settings: dict[str, str] = {}
    claimed: list[str] = []
    if channel == ChannelType.EMAIL:
        primary = _support_address(email or "")
        claimed = await _free_addresses(session, None, list(dict.fromkeys(
            [primary, *_support_addresses(addresses or [], "body.addresses")])))
        settings = {"email": primary, "from_name": from_name or name,
                    "signature": signature or "",
                    "auto_acknowledgement": auto_acknowledgement or ""}
    inbox = Inbox(workspace_id=principal.workspace_id, name=name, channel=channel,
                  settings=settings)
    session.add(inbox)
    await session.flush()
    await _claim(session, inbox, claimed)
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action="inbox.created", subject_type="inbox",
                    subject_id=inbox.id, changes={"name": name, "channel": channel})
    record_event(session, principal.workspace_id, EventType.INBOX_CREATED,
                 InboxEvent(inbox=(await describe_inboxes(session, [inbox]))[0],
                            actor_user_id=principal.user_id))
    return inbox


async def list_inboxes(session: AsyncSession, principal: Principal) -> list[Inbox]:
    rows = await session.execute(
        select(Inbox).where(Inbox.workspace_id == principal.workspace_id).order_by(Inbox.id)
    )
    return list(rows.scalars())


async def get_inbox(session: AsyncSession, principal: Principal, inbox_id: int) -> Inbox:
    return await get_in_workspace(session, Inbox, principal.workspace_id, inbox_id, what="Inbox")


async def rename_inbox(
    session: AsyncSession, principal: Principal, inbox_id: int, name: str
) -> Inbox:
    return await update_inbox(session, principal, inbox_id, name=name)


async def update_inbox(
    session: AsyncSession, principal: Principal, inbox_id: int, *, name: str | None = None,
    email_settings: dict[str, str] | None = None, addresses: list[str] | None = None,
    disabled: bool | None = None,
) -> Inbox:
    """Rename an inbox, disable or enable it (see `disable_inbox`) and/or change an e-mail
    inbox's settings (`email`, `from_name`, `signature`, `auto_acknowledgement`; those
    given change) and its addresses.

    A new `email` is claimed like at creation (409 `email_address_taken` when another
    inbox owns it) and becomes the primary address; the inbox keeps receiving at its
    earlier ones: customers still answer old threads there. `addresses`, when given, is
    every address the inbox receives at from now on: new ones are claimed, missing ones
    released (mail to them is refused, and another inbox may claim them). It must hold
    the primary address (422 `primary_address_required`): make another address primary
    first."""
    principal.require(Role.ADMIN)
    inbox = await get_inbox(session, principal, inbox_id)
    email_settings = email_settings or {}
    if (email_settings or addresses is not None) and inbox.channel != ChannelType.EMAIL:
        raise InvalidInput(
            f"Inbox {inbox_id} is a '{inbox.channel}' inbox; e-mail settings are for e-mail "
            "inboxes", code="not_an_email_inbox")
    # Everything is checked before anything is written (see _free_addresses).
    wanted = dict(email_settings)
    current = dict(inbox.settings or {})
    if "email" in wanted:
        wanted["email"] = _support_address(wanted["email"])
    primary = wanted.get("email", current.get("email"))
    kept: list[str] | None = None
    if addresses is not None:
        kept = _support_addresses(addresses, "body.addresses")
        if primary not in kept:
            raise InvalidInput(
                f"{primary} is the inbox's primary address: it cannot be removed; make "
                "another address primary (`email`) first",
                code="primary_address_required",
                details=[{"field": "body.addresses",
                          "message": f"must include the primary address {primary}"}])
    # Without a list, a new primary joins the addresses the inbox has.
    asked = [wanted["email"]] if "email" in wanted else []
    new = await _free_addresses(session, inbox.id, kept if kept is not None else asked)
    changed: dict[str, list[object]] = {}  # for the event: every field, [before, after]
    if name is not None and inbox.name != name:
        changed["name"] = [inbox.name, name]
        record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                        actor_id=principal.user_id, action="inbox.renamed", subject_type="inbox",
                        subject_id=inbox.id, changes={"name": [inbox.name, name]})
        inbox.name = name
    changes: dict[str, list[Any]] = {}
    if new or kept is not None:
        before = await inbox_addresses(session, inbox)
        await _claim(session, inbox, new)
        released = [address for address in before if kept is not None and address not in kept]
        if released:
            await session.execute(delete(SupportAddress).where(
                SupportAddress.inbox_id == inbox.id, SupportAddress.address.in_(released)))
        if new or released:
            changes["addresses"] = [before,
                                    await inbox_addresses(session, inbox, primary=primary)]
    changes.update({key: [current.get(key), value] for key, value in wanted.items()
                    if current.get(key) != value})
    if changes:
        # A new dict: the JSON column notices assignment, not changes made in place.
        inbox.settings = {**current, **wanted}
        record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                        actor_id=principal.user_id, action="inbox.email_settings_changed",
                        subject_type="inbox", subject_id=inbox.id, changes=changes)
        forget_inbox_routes(inbox.id)
        changed.update(changes)
    if disabled is not None and (inbox.disabled_at is not None) != disabled:
        changed["disabled"] = [not disabled, disabled]
        record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                        actor_id=principal.user_id,
                        action="inbox.disabled" if disabled else "inbox.enabled",
                        subject_type="inbox", subject_id=inbox.id, changes={})
        inbox.disabled_at = utcnow() if disabled else None
        forget_inbox_routes(inbox.id)
        _forget_inbox_channel(inbox.id)
    if changed:
        await session.flush()  # the row's state as committed (created_at and all)
        record_event(session, principal.workspace_id, EventType.INBOX_UPDATED,
                     InboxEvent(inbox=(await describe_inboxes(session, [inbox]))[0],
                                changes=changed,
                                actor_user_id=principal.user_id))
    return inbox


async def disable_inbox(session: AsyncSession, principal: Principal, inbox_id: int) -> Inbox:
    """Archive an inbox: it takes no new messages (the API channel answers 409
    `inbox_disabled`, the SMTP server 550 for its addresses, its IMAP mailbox is no longer
    polled) while its conversations stay listed (the inbox filter keeps it), readable and
    answerable: replies from a disabled e-mail inbox still go out, so the team can finish
    its open work. Idempotent. Event `inbox.updated` with `changes.disabled`."""
    return await update_inbox(session, principal, inbox_id, disabled=True)


async def enable_inbox(session: AsyncSession, principal: Principal, inbox_id: int) -> Inbox:
    """Undo `disable_inbox`: the inbox takes messages again."""
    return await update_inbox(session, principal, inbox_id, disabled=False)


async def describe_inboxes(session: AsyncSession, inboxes: Sequence[Inbox]) -> list[InboxOut]:
    """The inboxes as the API shows them (and their events carry them): with addresses."""
    addresses = await addresses_by_inbox(session, inboxes)
    return [InboxOut.model_validate(i).model_copy(update={"addresses": addresses.get(i.id, [])})
            for i in inboxes]


async def inbox_addresses(session: AsyncSession, inbox: Inbox, *,
                          primary: str | None = None) -> list[str]:
    """Every address the inbox receives mail for: the primary first (`primary`, else its
    `settings.email`), then the others oldest first."""
    return (await addresses_by_inbox(session, [inbox], primaries={inbox.id: primary}
                                     if primary else None)).get(inbox.id, [])


async def addresses_by_inbox(session: AsyncSession, inboxes: Sequence[Inbox], *,
                             primaries: dict[int, str] | None = None
                             ) -> dict[int, list[str]]:
    """`inbox_addresses` of several inboxes in one query (those without any are left
    out). The inboxes are the caller's, read through the workspace check."""
    if not inboxes:
        return {}
    primary_of = {inbox.id: (inbox.settings or {}).get("email") for inbox in inboxes}
    primary_of.update(primaries or {})
    rows = (await session.execute(
        select(SupportAddress.inbox_id, SupportAddress.address)
        .where(SupportAddress.inbox_id.in_(list(primary_of)))
        .order_by(SupportAddress.id))).tuples().all()
    found: dict[int, list[str]] = {}
    for inbox_id, address in rows:
        listed = found.setdefault(inbox_id, [])
        if address == primary_of[inbox_id]:
            listed.insert(0, address)
        else:
            listed.append(address)
    return found


async def support_addresses(session: AsyncSession, principal: Principal,
                            inbox_id: int) -> list[str]:
    """Every address the inbox receives mail for, the primary first."""
    return await inbox_addresses(session, await get_inbox(session, principal, inbox_id))


async def inbox_channel(session: AsyncSession, principal: Principal, inbox_id: int) -> str:
    """The inbox's channel, cached briefly: intake asks this on every message."""
    key = (str(getattr(session.bind, "url", "")), principal.workspace_id, inbox_id)
    hit = _channel_cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return (await _remember_channel(key, session, principal, inbox_id))[0]


async def cached_inbox_intake(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, inbox_id: int
) -> tuple[str, bool]:
    """The inbox's channel and whether it is disabled, opening a session only on a cache
    miss: on the intake path even creating and closing an unused session per message is
    measurable. Disabling drops the entry in this process; other processes notice within
    INBOX_CACHE_SECONDS."""
    key = (str(getattr(sessions.kw.get("bind"), "url", "")), principal.workspace_id, inbox_id)
    hit = _channel_cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1], hit[2]
    async with sessions() as session:
        return await _remember_channel(key, session, principal, inbox_id)


async def _remember_channel(
    key: tuple[str, int, int], session: AsyncSession, principal: Principal, inbox_id: int
) -> tuple[str, bool]:
    inbox = await get_inbox(session, principal, inbox_id)  # 404 for another workspace's
    if len(_channel_cache) > 10_000:
        _channel_cache.clear()
    disabled = inbox.disabled_at is not None
    _channel_cache[key] = (time.monotonic() + INBOX_CACHE_SECONDS, inbox.channel, disabled)
    return inbox.channel, disabled


def _forget_inbox_channel(inbox_id: int) -> None:
    for key in [key for key in _channel_cache if key[2] == inbox_id]:
        _channel_cache.pop(key, None)
