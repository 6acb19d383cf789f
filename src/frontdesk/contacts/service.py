"""Contacts: the only place that changes contacts, their identities and companies."""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import delete, exists, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.contacts.events import CompanyEvent, ContactEvent, ContactsMerged
from frontdesk.contacts.identities import normalize_phone
from frontdesk.contacts.models import (
    Company,
    Contact,
    ContactIdentity,
    ContactNote,
    ContactTag,
    IdentityKind,
)
from frontdesk.contacts.schemas import CompanyOut, ContactOut, ContactUpdate
from frontdesk.conversations.models import Conversation, Message
from frontdesk.core.activity import record_activity
from frontdesk.core.errors import Conflict, InvalidInput, NotFound
from frontdesk.core.events import EventType, record_event
from frontdesk.core.pagination import decode_id_cursor, encode_cursor
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.db.base import BigId, utcnow


def _like(q: str) -> str:
    # ILIKE folds case itself (lower() on both sides on SQLite), for every script.
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_contacts(
    session: AsyncSession, principal: Principal, *, q: str | None, cursor: str | None, limit: int,
    tag: str | None = None,
) -> tuple[list[Contact], str | None]:
    stmt = select(Contact).where(Contact.workspace_id == principal.workspace_id)
    if tag and tag.strip():
        stmt = stmt.where(exists().where(ContactTag.workspace_id == principal.workspace_id,
                                         ContactTag.contact_id == Contact.id,
                                         ContactTag.name == tag.strip().lower()))
    if q and q.strip():
        q = q.strip()
        pattern = _like(q)
        matches: list[ColumnElement[bool]] = [ContactIdentity.value.ilike(pattern, escape="\\")]
        with contextlib.suppress(ValueError):  # "+7 916 123-45-67" finds +79161234567
            matches.append(ContactIdentity.value == normalize_phone(q))
        stmt = stmt.where(
            or_(
                Contact.name.ilike(pattern, escape="\\"),
                exists().where(ContactIdentity.contact_id == Contact.id, or_(*matches)),
            )
        )
    if cursor:
        stmt = stmt.where(Contact.id < decode_id_cursor(cursor))
    stmt = stmt.order_by(Contact.id.desc()).limit(limit + 1)
    rows = list((await session.execute(stmt)).scalars())
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def get_contact(session: AsyncSession, principal: Principal, contact_id: int) -> Contact:
    return await get_in_workspace(
        session, Contact, principal.workspace_id, contact_id, what="Contact"
    )


async def list_identities(session: AsyncSession, contact: Contact) -> list[ContactIdentity]:
    rows = await session.execute(
        select(ContactIdentity)
        .where(ContactIdentity.contact_id == contact.id)
        .order_by(ContactIdentity.id)
    )
    return list(rows.scalars())


async def _claim_identity(
    session: AsyncSession, contact: Contact, kind: IdentityKind, value: str
) -> None:
    owner = (
        await session.execute(
            select(ContactIdentity.contact_id).where(
                ContactIdentity.workspace_id == contact.workspace_id,
                ContactIdentity.kind == kind.value,
                ContactIdentity.scope == "",
                ContactIdentity.value == value,
            )
        )
    ).scalar_one_or_none()
    if owner is None:
        session.add(ContactIdentity(workspace_id=contact.workspace_id, contact_id=contact.id,
                                    kind=kind.value, scope="", value=value))
    elif owner != contact.id:
        raise Conflict(
            f"{value} already belongs to contact {owner}; merge the two contacts instead",
            code="identity_taken", details={"contact_id": owner},
        )


async def update_contact(
    session: AsyncSession, principal: Principal, contact_id: int, patch: ContactUpdate
) -> Contact:
    contact = await get_contact(session, principal, contact_id)
    fields = patch.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    if "company_id" in fields and fields["company_id"] is not None:
        await get_in_workspace(session, Company, principal.workspace_id, fields["company_id"],
                               what="Company")
    if fields.get("email"):
        await _claim_identity(session, contact, IdentityKind.EMAIL, fields["email"])
    if fields.get("phone"):
        await _claim_identity(session, contact, IdentityKind.PHONE, fields["phone"])
    for name in ("name", "email", "phone", "company_id"):
        if name in fields and getattr(contact, name) != fields[name]:
            if name == "name" and fields[name] is None:
                raise InvalidInput("name cannot be null; send an empty string to clear it",
                                   details=[{"field": "body.name", "message": "cannot be null"}])
            changes[name] = [getattr(contact, name), fields[name]]
            setattr(contact, name, fields[name])
    if fields.get("custom_attributes"):
        merged = dict(contact.custom_attributes)
        for key, value in fields["custom_attributes"].items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        if merged != contact.custom_attributes:
            changes["custom_attributes"] = [contact.custom_attributes, merged]
            contact.custom_attributes = merged
    if changes:
        contact.updated_at = utcnow()
        await session.flush()
        record_event(session, principal.workspace_id, EventType.CONTACT_UPDATED,
                     ContactEvent(contact=ContactOut.model_validate(contact), changes=changes))
        record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                        actor_id=principal.user_id, action="contact.updated",
                        subject_type="contact", subject_id=contact.id, changes=changes)
    return contact


async def remove_identity(
    session: AsyncSession, principal: Principal, contact_id: int, identity_id: int
) -> Contact:
    """Forget one way of reaching the contact (a mistyped address, a number they gave up).
    If it was the preferred address or number, the contact has none until one is set."""
    contact = await get_contact(session, principal, contact_id)
    identity = await get_in_workspace(session, ContactIdentity, principal.workspace_id,
                                      identity_id, what="Identity")
    if identity.contact_id != contact.id:
        raise NotFound(f"Identity {identity_id} of contact {contact_id} was not found")
    changes: dict[str, Any] = {"identities": {"removed": [identity.kind, identity.value]}}
    for kind, name in ((IdentityKind.EMAIL, "email"), (IdentityKind.PHONE, "phone")):
        if identity.kind == kind.value and getattr(contact, name) == identity.value:
            changes[name] = [identity.value, None]
            setattr(contact, name, None)
    await session.delete(identity)
    contact.updated_at = utcnow()
    await session.flush()
    record_event(session, principal.workspace_id, EventType.CONTACT_UPDATED,
                 ContactEvent(contact=ContactOut.model_validate(contact), changes=changes))
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action="contact.updated",
                    subject_type="contact", subject_id=contact.id, changes=changes)
    return contact


async def merge_contacts(
    session: AsyncSession, principal: Principal, survivor_id: int, merged_id: int
) -> tuple[Contact, list[int]]:
    """Fold `merged_id` into `survivor_id`: conversations, messages, identities and notes
    move, the survivor gets the tags of both, blank profile fields are filled from the
    merged contact, which is then removed."""
    principal.require(Role.SUPERVISOR)
    survivor = await get_contact(session, principal, survivor_id)
    if survivor_id == merged_id:
        raise InvalidInput("A contact cannot be merged into itself", code="same_contact",
                           details=[{"field": "body.merge_id", "message": "is this contact"}])
    merged = await get_contact(session, principal, merged_id)
    ws = principal.workspace_id
    moved = list(
        (await session.execute(
            select(Conversation.id).where(Conversation.workspace_id == ws,
                                          Conversation.contact_id == merged.id)
        )).scalars()
    )
    await session.execute(
        update(Conversation)
        .where(Conversation.workspace_id == ws, Conversation.contact_id == merged.id)
        .values(contact_id=survivor.id)
    )
    await session.execute(
        update(Message).where(Message.workspace_id == ws, Message.sender_contact_id == merged.id)
        .values(sender_contact_id=survivor.id)
    )
    await session.execute(
        update(ContactIdentity)
        .where(ContactIdentity.workspace_id == ws, ContactIdentity.contact_id == merged.id)
        .values(contact_id=survivor.id)
    )
    await session.execute(
        update(ContactNote)
        .where(ContactNote.workspace_id == ws, ContactNote.contact_id == merged.id)
        .values(contact_id=survivor.id)
    )
    await _unite_tags(session, ws, survivor.id, merged.id)
    survivor.name = survivor.name or merged.name
    survivor.email = survivor.email or merged.email
    survivor.phone = survivor.phone or merged.phone
    survivor.company_id = survivor.company_id or merged.company_id
    survivor.custom_attributes = {**merged.custom_attributes, **survivor.custom_attributes}
    survivor.updated_at = utcnow()
    await session.execute(
        delete(Contact).where(Contact.id == merged.id, Contact.workspace_id == ws)
    )
    await session.flush()
    record_event(session, ws, EventType.CONTACTS_MERGED, ContactsMerged(
        contact=ContactOut.model_validate(survivor), merged_contact_id=merged_id,
        moved_conversation_ids=moved))
    record_activity(session, workspace_id=ws, actor_type="user", actor_id=principal.user_id,
                    action="contact.merged", subject_type="contact", subject_id=survivor.id,
                    changes={"merged_contact_id": merged_id, "conversations": moved})
    return survivor, moved


async def _unite_tags(session: AsyncSession, ws: int, survivor_id: int, merged_id: int) -> None:
    held = select(ContactTag.name).where(ContactTag.workspace_id == ws,
                                         ContactTag.contact_id == survivor_id)
    await session.execute(insert(ContactTag).from_select(
        ["workspace_id", "contact_id", "name", "created_at"],
        select(ContactTag.workspace_id, literal(survivor_id, BigId), ContactTag.name,
               ContactTag.created_at)
        .where(ContactTag.workspace_id == ws, ContactTag.contact_id == merged_id,
               ContactTag.name.not_in(held))))
    # The merged contact's own rows go when it is deleted (ON DELETE CASCADE).


async def create_company(
    session: AsyncSession, principal: Principal, *, name: str, domain: str | None,
    custom_attributes: dict[str, Any],
) -> Company:
    principal.require(Role.SUPERVISOR)
    taken = (await session.execute(
        select(Company.id).where(Company.workspace_id == principal.workspace_id,
                                 Company.name == name)
    )).scalar_one_or_none()
    if taken is not None:
        raise Conflict(f"A company named '{name}' already exists", details={"company_id": taken})
    company = Company(workspace_id=principal.workspace_id, name=name, domain=domain,
                      custom_attributes=custom_attributes)
    session.add(company)
    await session.flush()
    record_event(session, principal.workspace_id, EventType.COMPANY_CREATED,
                 CompanyEvent(company=CompanyOut.model_validate(company),
                              actor_user_id=principal.user_id))
    return company


async def list_companies(session: AsyncSession, principal: Principal) -> list[Company]:
    rows = await session.execute(
        select(Company).where(Company.workspace_id == principal.workspace_id).order_by(Company.name)
    )
    return list(rows.scalars())


async def get_company(session: AsyncSession, principal: Principal, company_id: int) -> Company:
    return await get_in_workspace(session, Company, principal.workspace_id, company_id,
                                  what="Company")
