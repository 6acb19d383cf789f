"""Inboxes: the only place that creates and changes them."""

from __future__ import annotations

import time

from sqlalchemy import select
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

INBOX_CACHE_SECONDS = 30.0
# Keyed by database too: one process may talk to several (the test suite does), and an
# entry says "this workspace has this inbox", which must never leak from one to another.
_channel_cache: dict[tuple[str, int, int], tuple[float, str]] = {}


def _support_address(email: str) -> str:
    """The address normalised, or 422 `invalid_email`."""
    try:
        address = normalize_email(email)
    except ValueError as exc:
        raise InvalidInput("Not an e-mail address", code="invalid_email",
                           details=[{"field": "body.email", "message": str(exc)}]) from exc
    if "+" in address.partition("@")[0]:
        # Plus-addressed replies (support+c12.x@) route to the plain address.
        raise InvalidInput("A support address cannot contain '+'", code="invalid_email",
                           details=[{"field": "body.email", "message": "contains '+'"}])
    return address


async def create_inbox(
    session: AsyncSession, principal: Principal, *, name: str, channel: str,
    email: str | None = None, from_name: str | None = None, signature: str | None = None,
    auto_acknowledgement: str | None = None,
) -> Inbox:
    """A new inbox. An e-mail inbox claims its support address for good: mail for an
    address must route to exactly one inbox, so an address taken (in any workspace)
    answers 409 `email_address_taken`."""
    principal.require(Role.ADMIN)
    settings: dict[str, str] = {}
    address: str | None = None
    if channel == ChannelType.EMAIL:
        address = _support_address(email or "")
        taken = await session.scalar(
            select(SupportAddress.id).where(SupportAddress.address == address))
        if taken is not None:
            raise Conflict("Another inbox already receives mail for this address",
                           code="email_address_taken")
        settings = {"email": address, "from_name": from_name or name,
                    "signature": signature or "",
                    "auto_acknowledgement": auto_acknowledgement or ""}
    inbox = Inbox(workspace_id=principal.workspace_id, name=name, channel=channel,
                  settings=settings)
    session.add(inbox)
    await session.flush()
    if address is not None:
        session.add(SupportAddress(workspace_id=principal.workspace_id, inbox_id=inbox.id,
                                   address=address))
        await session.flush()
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action="inbox.created", subject_type="inbox",
                    subject_id=inbox.id, changes={"name": name, "channel": channel})
    record_event(session, principal.workspace_id, EventType.INBOX_CREATED,
                 InboxEvent(inbox=InboxOut.model_validate(inbox), actor_user_id=principal.user_id))
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
    email_settings: dict[str, str] | None = None,
) -> Inbox:
    """Rename an inbox and/or change an e-mail inbox's settings (`email`, `from_name`,
    `signature`, `auto_acknowledgement`; those given change). A new support address is
    claimed like at creation (409 `email_address_taken` when another inbox owns it) and
    becomes the address replies come from; the inbox keeps receiving at its earlier ones:
    customers still answer old threads there, and an address never moves to another inbox."""
    principal.require(Role.ADMIN)
    inbox = await get_inbox(session, principal, inbox_id)
    email_settings = email_settings or {}
    if email_settings and inbox.channel != ChannelType.EMAIL:
        raise InvalidInput(
            f"Inbox {inbox_id} is a '{inbox.channel}' inbox; e-mail settings are for e-mail "
            "inboxes", code="not_an_email_inbox")
    changed: dict[str, list[object]] = {}  # for the event: every field, [before, after]
    if name is not None and inbox.name != name:
        changed["name"] = [inbox.name, name]
        record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                        actor_id=principal.user_id, action="inbox.renamed", subject_type="inbox",
                        subject_id=inbox.id, changes={"name": [inbox.name, name]})
        inbox.name = name
    wanted = dict(email_settings)
    if "email" in wanted:
        wanted["email"] = address = _support_address(wanted["email"])
        owner = await session.scalar(
            select(SupportAddress.inbox_id).where(SupportAddress.address == address))
        if owner is None:
            session.add(SupportAddress(workspace_id=principal.workspace_id, inbox_id=inbox.id,
                                       address=address))
            await session.flush()
        elif owner != inbox.id:
            raise Conflict("Another inbox already receives mail for this address",
                           code="email_address_taken")
    current = dict(inbox.settings or {})
    changes = {key: [current.get(key), value] for key, value in wanted.items()
               if current.get(key) != value}
    if changes:
        # A new dict: the JSON column notices assignment, not changes made in place.
        inbox.settings = {**current, **wanted}
        record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                        actor_id=principal.user_id, action="inbox.email_settings_changed",
                        subject_type="inbox", subject_id=inbox.id, changes=changes)
        forget_inbox_routes(inbox.id)
        changed.update(changes)
    if changed:
        await session.flush()  # the row's state as committed (created_at and all)
        record_event(session, principal.workspace_id, EventType.INBOX_UPDATED,
                     InboxEvent(inbox=InboxOut.model_validate(inbox), changes=changed,
                                actor_user_id=principal.user_id))
    return inbox


async def support_addresses(session: AsyncSession, principal: Principal,
                            inbox_id: int) -> list[str]:
    """Every address the inbox receives mail for, oldest first."""
    inbox = await get_inbox(session, principal, inbox_id)
    rows = await session.scalars(
        select(SupportAddress.address).where(SupportAddress.inbox_id == inbox.id,
                                             SupportAddress.workspace_id == inbox.workspace_id)
        .order_by(SupportAddress.id))
    return list(rows)


async def inbox_channel(session: AsyncSession, principal: Principal, inbox_id: int) -> str:
    """The inbox's channel, cached briefly: intake asks this on every message."""
    key = (str(getattr(session.bind, "url", "")), principal.workspace_id, inbox_id)
    hit = _channel_cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return await _remember_channel(key, session, principal, inbox_id)


async def cached_inbox_channel(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, inbox_id: int
) -> str:
    """The same, opening a session only on a cache miss: on the intake path even creating
    and closing an unused session per message is measurable."""
    key = (str(getattr(sessions.kw.get("bind"), "url", "")), principal.workspace_id, inbox_id)
    hit = _channel_cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    async with sessions() as session:
        return await _remember_channel(key, session, principal, inbox_id)


async def _remember_channel(
    key: tuple[str, int, int], session: AsyncSession, principal: Principal, inbox_id: int
) -> str:
    inbox = await get_inbox(session, principal, inbox_id)  # 404 for another workspace's
    if len(_channel_cache) > 10_000:
        _channel_cache.clear()
    _channel_cache[key] = (time.monotonic() + INBOX_CACHE_SECONDS, inbox.channel)
    return inbox.channel
