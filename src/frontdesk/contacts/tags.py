"""Tags of contacts themselves ("vip", "churn-risk"): a label of the person, kept apart from
conversation tags (which describe one request). Every member adds and removes them; each
change is a `contact.updated` event with `changes.tags = [before, after]`.

Admins also rename and delete a tag across the workspace (the admin's tag screen). That
is one activity entry and, in the same transaction, a `contact.updated` event for each
contact that carried the tag, built in one pass (never a query per contact)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.contacts.events import ContactEvent
from frontdesk.contacts.models import Contact, ContactTag
from frontdesk.contacts.schemas import ContactOut, normalize_contact_tag
from frontdesk.contacts.service import get_contact
from frontdesk.core.activity import record_activity
from frontdesk.core.errors import InvalidInput, NotFound
from frontdesk.core.events import EventType, record_event, record_events
from frontdesk.db.base import utcnow


async def contact_tags(session: AsyncSession, contact: Contact) -> list[str]:
    rows = await session.execute(
        select(ContactTag.name)
        .where(ContactTag.workspace_id == contact.workspace_id,
               ContactTag.contact_id == contact.id)
        .order_by(ContactTag.name)
    )
    return list(rows.scalars())


async def tags_of_contacts(
    session: AsyncSession, principal: Principal, contact_ids: list[int]
) -> dict[int, list[str]]:
    """For lists: every listed contact's tags from one query."""
    if not contact_ids:
        return {}
    rows = await session.execute(
        select(ContactTag.contact_id, ContactTag.name)
        .where(ContactTag.workspace_id == principal.workspace_id,
               ContactTag.contact_id.in_(contact_ids))
        .order_by(ContactTag.name)
    )
    found: dict[int, list[str]] = {}
    for contact_id, name in rows.tuples():
        found.setdefault(contact_id, []).append(name)
    return found


async def workspace_contact_tags(session: AsyncSession, principal: Principal) -> list[str]:
    """Every tag some contact of the workspace carries, for filters and suggestions."""
    rows = await session.execute(
        select(ContactTag.name).where(ContactTag.workspace_id == principal.workspace_id)
        .distinct().order_by(ContactTag.name)
    )
    return list(rows.scalars())


async def add_contact_tags(
    session: AsyncSession, principal: Principal, contact_id: int, names: list[str]
) -> Contact:
    """`names` are normalized (ContactTagsIn); ones the contact has are left as they are."""
    contact = await get_contact(session, principal, contact_id)
    before = await contact_tags(session, contact)
    for name in names:
        if name not in before:
            session.add(ContactTag(workspace_id=contact.workspace_id, contact_id=contact.id,
                                   name=name))
    return await _changed(session, principal, contact, before)


async def remove_contact_tags(
    session: AsyncSession, principal: Principal, contact_id: int, names: list[str]
) -> Contact:
    """Tags the contact does not carry are ignored: the outcome is what was asked."""
    contact = await get_contact(session, principal, contact_id)
    before = await contact_tags(session, contact)
    await session.execute(
        delete(ContactTag).where(ContactTag.workspace_id == contact.workspace_id,
                                 ContactTag.contact_id == contact.id,
                                 ContactTag.name.in_(names))
    )
    return await _changed(session, principal, contact, before)


async def _changed(
    session: AsyncSession, principal: Principal, contact: Contact, before: list[str]
) -> Contact:
    await session.flush()
    after = await contact_tags(session, contact)
    if after != before:
        contact.updated_at = utcnow()
        await session.flush()
        changes = {"tags": [before, after]}
        record_event(session, principal.workspace_id, EventType.CONTACT_UPDATED,
                     ContactEvent(contact=ContactOut.model_validate(contact), changes=changes))
        record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                        actor_id=principal.user_id, action="contact.updated",
                        subject_type="contact", subject_id=contact.id, changes=changes)
    return contact


# --- the workspace's contact tags (admins) -------------------------------------------------


@dataclass(frozen=True)
class ContactTagUsage:
    name: str
    contacts: int


async def list_contact_tag_usage(
    session: AsyncSession, principal: Principal
) -> list[ContactTagUsage]:
    """Every contact tag of the workspace with the number of contacts carrying it, by name."""
    rows = await session.execute(
        select(ContactTag.name, func.count())
        .where(ContactTag.workspace_id == principal.workspace_id)
        .group_by(ContactTag.name).order_by(ContactTag.name)
    )
    return [ContactTagUsage(name=name, contacts=int(n)) for name, n in rows.tuples()]


def _stored_form(name: str, field: str) -> str:
    try:
        return normalize_contact_tag(name)
    except ValueError as exc:
        raise InvalidInput("A tag is 1 to 100 characters", code="bad_tag",
                           details=[{"field": field, "message": "1 to 100 characters"}]) from exc


async def rename_contact_tag(
    session: AsyncSession, principal: Principal, name: str, new_name: str
) -> ContactTagUsage:
    """Rename a contact tag on every contact carrying it. Renaming it to a tag in use merges
    the two: a contact that had both keeps one."""
    principal.require(Role.ADMIN)
    old = name.strip().lower()
    new = _stored_form(new_name, "body.name")
    ws = principal.workspace_id
    if new != old:
        carriers = await _carriers(session, principal, old)
        # A contact carries a name once: where the new one is there already, the old goes.
        has_new = select(ContactTag.contact_id).where(ContactTag.workspace_id == ws,
                                                      ContactTag.name == new)
        await session.execute(delete(ContactTag).where(
            ContactTag.workspace_id == ws, ContactTag.name == old,
            ContactTag.contact_id.in_(has_new)))
        await session.execute(
            update(ContactTag).where(ContactTag.workspace_id == ws, ContactTag.name == old)
            .values(name=new).execution_options(synchronize_session=False))
        record_activity(session, workspace_id=ws, actor_type="user",
                        actor_id=principal.user_id, action="contact_tag.renamed",
                        subject_type="workspace", subject_id=ws,
                        changes={"name": [old, new], "contacts": len(carriers.contacts)})
        await carriers.emit(session, principal, old, new)
    count = (await session.execute(
        select(func.count()).select_from(ContactTag)
        .where(ContactTag.workspace_id == ws, ContactTag.name == new))).scalar_one()
    if not count:
        raise NotFound(f"Contact tag '{name}' was not found")
    return ContactTagUsage(name=new, contacts=int(count))


async def delete_contact_tag(session: AsyncSession, principal: Principal, name: str) -> int:
    """Remove a contact tag from every contact carrying it; how many carried it."""
    principal.require(Role.ADMIN)
    old = name.strip().lower()
    ws = principal.workspace_id
    carriers = await _carriers(session, principal, old)
    await session.execute(delete(ContactTag).where(ContactTag.workspace_id == ws,
                                                   ContactTag.name == old))
    record_activity(session, workspace_id=ws, actor_type="user", actor_id=principal.user_id,
                    action="contact_tag.deleted", subject_type="workspace", subject_id=ws,
                    changes={"name": old, "contacts": len(carriers.contacts)})
    await carriers.emit(session, principal, old, None)
    return len(carriers.contacts)


@dataclass(frozen=True)
class _Carriers:
    """The contacts carrying a tag (their `updated_at` already moved on) and each one's
    tags, read before the tag changes."""

    contacts: list[Contact]
    tags: dict[int, list[str]]

    async def emit(self, session: AsyncSession, principal: Principal, old: str,
                   new: str | None) -> None:
        """`contact.updated` for each carrier, with `changes.tags = [before, after]`."""
        events = []
        for contact in self.contacts:
            before = self.tags.get(contact.id, [])
            after = sorted({t for t in before if t != old} | ({new} if new else set()))
            if after != before:
                events.append(ContactEvent(contact=ContactOut.model_validate(contact),
                                           changes={"tags": [before, after]}))
        await record_events(session, principal.workspace_id, EventType.CONTACT_UPDATED, events)


async def _carriers(session: AsyncSession, principal: Principal, name: str) -> _Carriers:
    """Three statements whatever their number; another workspace's tag is not found."""
    ws = principal.workspace_id
    # A subquery, never a list of ids: the tag may be on most of the workspace's contacts.
    carrying = select(ContactTag.contact_id).where(ContactTag.workspace_id == ws,
                                                   ContactTag.name == name)
    rows = await session.execute(
        select(ContactTag.contact_id, ContactTag.name)
        .where(ContactTag.workspace_id == ws, ContactTag.contact_id.in_(carrying))
        .order_by(ContactTag.contact_id, ContactTag.name))
    tags: dict[int, list[str]] = {}
    for contact_id, tag in rows.tuples():
        tags.setdefault(contact_id, []).append(tag)
    if not tags:
        raise NotFound(f"Contact tag '{name}' was not found")
    # Their tags change: each contact was updated now, as when an agent changes them.
    await session.execute(
        update(Contact).where(Contact.workspace_id == ws, Contact.id.in_(carrying))
        .values(updated_at=utcnow()).execution_options(synchronize_session=False))
    contacts = list((await session.execute(
        select(Contact).where(Contact.workspace_id == ws, Contact.id.in_(carrying))
        .order_by(Contact.id).execution_options(populate_existing=True))).scalars())
    return _Carriers(contacts=contacts, tags=tags)
