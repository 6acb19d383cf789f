"""Tags of contacts themselves ("vip", "churn-risk"): a label of the person, kept apart from
conversation tags (which describe one request). Every member adds and removes them; each
change is a `contact.updated` event with `changes.tags = [before, after]`."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.service import Principal
from frontdesk.contacts.events import ContactEvent
from frontdesk.contacts.models import Contact, ContactTag
from frontdesk.contacts.schemas import ContactOut
from frontdesk.contacts.service import get_contact
from frontdesk.core.activity import record_activity
from frontdesk.core.events import EventType, record_event
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
