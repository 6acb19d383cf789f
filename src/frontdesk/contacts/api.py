from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from frontdesk.accounts.auth import CurrentPrincipal
from frontdesk.contacts import notes, service, tags
from frontdesk.contacts.models import Contact
from frontdesk.contacts.schemas import (
    CompanyCreate,
    CompanyOut,
    ContactDetail,
    ContactMerge,
    ContactNoteIn,
    ContactNoteOut,
    ContactNotePage,
    ContactOut,
    ContactPage,
    ContactTagsIn,
    ContactUpdate,
    IdentityOut,
)
from frontdesk.core.deps import DbSession
from frontdesk.core.ids import PathId

router = APIRouter(tags=["contacts"])


async def _detail(db: DbSession, contact: Contact) -> ContactDetail:
    detail = ContactDetail.model_validate(contact)
    detail.identities = [IdentityOut.model_validate(i)
                         for i in await service.list_identities(db, contact)]
    detail.tags = await tags.contact_tags(db, contact)
    return detail


@router.get("/contacts", response_model=ContactPage)
async def list_contacts(
    db: DbSession, principal: CurrentPrincipal,
    q: Annotated[str | None, Query(max_length=200, description="name, e-mail, phone or id")] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    tag: Annotated[str | None, Query(max_length=100,
                                     description="only contacts carrying this tag")] = None,
) -> ContactPage:
    rows, next_cursor = await service.list_contacts(db, principal, q=q, cursor=cursor, limit=limit,
                                                    tag=tag)
    return ContactPage(items=[ContactOut.model_validate(c) for c in rows], next_cursor=next_cursor)


@router.get("/contacts/{contact_id}", response_model=ContactDetail)
async def get_contact(
    contact_id: PathId, db: DbSession, principal: CurrentPrincipal
) -> ContactDetail:
    return await _detail(db, await service.get_contact(db, principal, contact_id))


@router.patch("/contacts/{contact_id}", response_model=ContactDetail)
async def update_contact(
    contact_id: PathId, patch: ContactUpdate, db: DbSession, principal: CurrentPrincipal
) -> ContactDetail:
    return await _detail(db, await service.update_contact(db, principal, contact_id, patch))


@router.delete("/contacts/{contact_id}/identities/{identity_id}", response_model=ContactDetail)
async def remove_identity(
    contact_id: PathId, identity_id: PathId, db: DbSession, principal: CurrentPrincipal
) -> ContactDetail:
    """Forget one identity; if it was the preferred e-mail or phone, that is cleared too."""
    return await _detail(db, await service.remove_identity(db, principal, contact_id,
                                                           identity_id))


@router.post("/contacts/{contact_id}/merge", response_model=ContactDetail)
async def merge_contacts(
    contact_id: PathId, body: ContactMerge, db: DbSession, principal: CurrentPrincipal
) -> ContactDetail:
    survivor, _ = await service.merge_contacts(db, principal, contact_id, body.merge_id)
    return await _detail(db, survivor)


@router.get("/contacts/{contact_id}/notes", response_model=ContactNotePage)
async def list_notes(
    contact_id: PathId, db: DbSession, principal: CurrentPrincipal,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ContactNotePage:
    """The notes about the contact, newest first."""
    rows, next_cursor = await notes.list_notes(db, principal, contact_id, cursor=cursor,
                                               limit=limit)
    return ContactNotePage(items=[ContactNoteOut.model_validate(n) for n in rows],
                           next_cursor=next_cursor)


@router.post("/contacts/{contact_id}/notes", response_model=ContactNoteOut, status_code=201)
async def add_note(
    contact_id: PathId, body: ContactNoteIn, db: DbSession, principal: CurrentPrincipal
) -> ContactNoteOut:
    return ContactNoteOut.model_validate(await notes.add_note(db, principal, contact_id,
                                                              body.body))


@router.patch("/contacts/{contact_id}/notes/{note_id}", response_model=ContactNoteOut)
async def update_note(
    contact_id: PathId, note_id: PathId, body: ContactNoteIn, db: DbSession,
    principal: CurrentPrincipal,
) -> ContactNoteOut:
    """The author's own note, or anyone's for supervisors and admins (403 `not_yours`)."""
    return ContactNoteOut.model_validate(
        await notes.update_note(db, principal, contact_id, note_id, body.body))


@router.delete("/contacts/{contact_id}/notes/{note_id}", status_code=204,
               response_class=Response)
async def delete_note(
    contact_id: PathId, note_id: PathId, db: DbSession, principal: CurrentPrincipal
) -> Response:
    """The author's own note, or anyone's for supervisors and admins (403 `not_yours`)."""
    await notes.delete_note(db, principal, contact_id, note_id)
    return Response(status_code=204)


@router.post("/contacts/{contact_id}/tags", response_model=ContactDetail)
async def add_contact_tags(
    contact_id: PathId, body: ContactTagsIn, db: DbSession, principal: CurrentPrincipal
) -> ContactDetail:
    """Tags the contact itself (not its conversations); ones it has stay as they are."""
    return await _detail(db, await tags.add_contact_tags(db, principal, contact_id, body.tags))


@router.delete("/contacts/{contact_id}/tags", response_model=ContactDetail)
async def remove_contact_tags(
    contact_id: PathId, body: ContactTagsIn, db: DbSession, principal: CurrentPrincipal
) -> ContactDetail:
    """Removes these tags from the contact; tags it does not carry are ignored."""
    return await _detail(db, await tags.remove_contact_tags(db, principal, contact_id,
                                                            body.tags))


@router.post("/companies", response_model=CompanyOut, status_code=201)
async def create_company(
    body: CompanyCreate, db: DbSession, principal: CurrentPrincipal
) -> CompanyOut:
    company = await service.create_company(db, principal, name=body.name, domain=body.domain,
                                           custom_attributes=body.custom_attributes)
    return CompanyOut.model_validate(company)


@router.get("/companies", response_model=list[CompanyOut])
async def list_companies(db: DbSession, principal: CurrentPrincipal) -> list[CompanyOut]:
    return [CompanyOut.model_validate(c) for c in await service.list_companies(db, principal)]


@router.get("/companies/{company_id}", response_model=CompanyOut)
async def get_company(company_id: PathId, db: DbSession, principal: CurrentPrincipal) -> CompanyOut:
    return CompanyOut.model_validate(await service.get_company(db, principal, company_id))
