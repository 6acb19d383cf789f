"""Contact pages: the searchable list, one contact's page (profile, identities, company,
attributes, tags, notes, every conversation), editing, and merging two contacts. Every
member may read and edit contacts, as in the API; merging is for supervisors and admins.
The conversation view's contact sidebar loads the contact's tags and latest notes from
here, and its forms post here too (answered with the sidebar section, not a redirect)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from frontdesk.contacts import notes as contact_notes
from frontdesk.contacts import service as contacts
from frontdesk.contacts import tags as contact_tags
from frontdesk.contacts.schemas import MAX_NOTE_CHARS, ContactNoteIn, ContactTagsIn, ContactUpdate
from frontdesk.core.deps import DbSession
from frontdesk.core.errors import Conflict, Forbidden, FrontdeskError, InvalidInput, NotFound
from frontdesk.core.ids import PathId
from frontdesk.web.contact_page import (
    contact_activity,
    display_name,
    load_contact,
    load_sidebar,
    load_timeline_page,
    merge_candidate,
)
from frontdesk.web.i18n import N_
from frontdesk.web.pages import base_context, flash, htmx_target, redirect, web_router
from frontdesk.web.roles import SupervisorAgent
from frontdesk.web.session import Agent, CurrentAgent
from frontdesk.web.templating import render

router = web_router()

PAGE_SIZE = 50
PICKER_SIZE = 10
ATTRIBUTE_KEY_LIMIT = 100
ATTRIBUTE_VALUE_LIMIT = 1000

REFUSALS = {
    "identity_taken": N_("That address or number belongs to another contact. Merge the two "
                         "contacts instead."),
    "same_contact": N_("A contact cannot be merged into itself."),
}
GENERIC_REFUSAL = N_("That could not be saved. Check what you entered and try again.")


def _page(contact_id: int) -> str:
    return f"/app/contacts/{contact_id}"


def _refused(request: Request, exc: FrontdeskError, back: str) -> Response:
    if isinstance(exc, Forbidden | NotFound):  # the error page, as on every other route
        raise exc
    flash(request, REFUSALS.get(exc.code, GENERIC_REFUSAL), "error")
    return redirect(request, back)


@router.get("/contacts")
async def contacts_page(
    request: Request, db: DbSession, agent: CurrentAgent,
    q: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    tag: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    items, next_cursor = await contacts.list_contacts(db, agent.principal, q=q, cursor=cursor,
                                                      limit=PAGE_SIZE, tag=tag)
    companies = {c.id: c for c in await contacts.list_companies(db, agent.principal)}
    activity = await contact_activity(db, agent.principal, [c.id for c in items])
    return render(request, "contacts/list.html", base_context(
        request, agent, section="contacts", q=q, tag=tag.strip().lower(), items=items,
        next_cursor=next_cursor, companies=companies, activity=activity,
        display_name=display_name,
        tags_of=await contact_tags.tags_of_contacts(db, agent.principal, [c.id for c in items]),
        all_tags=await contact_tags.workspace_contact_tags(db, agent.principal)))


@router.get("/contacts/{contact_id}")
async def contact_page(
    contact_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    notes_cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    view = await load_contact(db, agent.principal, contact_id, notes_cursor=notes_cursor)
    return render(request, "contacts/detail.html", base_context(
        request, agent, section="contacts", view=view, notes_cursor=notes_cursor,
        note_limit=MAX_NOTE_CHARS))


@router.get("/contacts/{contact_id}/timeline")
async def contact_timeline(
    contact_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    cursor: Annotated[str, Query(max_length=512)],
) -> Response:
    """The next page of the contact's conversations, for the timeline's "Show more"."""
    page = await load_timeline_page(db, agent.principal, contact_id, cursor)
    return render(request, "contacts/timeline_items.html", base_context(
        request, agent, timeline=page.rows, timeline_cursor=page.cursor, inboxes=page.inboxes,
        contact_id=page.contact.id))


SIDEBAR_TARGET = "contact-extras"


@router.get("/contacts/{contact_id}/sidebar")
async def contact_sidebar(
    contact_id: PathId, request: Request, db: DbSession, agent: CurrentAgent
) -> Response:
    """The contact's tags and latest notes, for the conversation view's contact panel."""
    return await _sidebar(request, db, agent, contact_id)


async def _sidebar(request: Request, db: DbSession, agent: Agent, contact_id: int) -> Response:
    side = await load_sidebar(db, agent.principal, contact_id)
    return render(request, "contacts/sidebar.html", base_context(
        request, agent, side=side, note_limit=MAX_NOTE_CHARS))


async def _done(
    request: Request, db: DbSession, agent: Agent, contact_id: int, message: str,
    anchor: str,
) -> Response:
    """The sidebar answers with itself, redrawn; the contact page with a redirect back."""
    if htmx_target(request) == SIDEBAR_TARGET:
        return await _sidebar(request, db, agent, contact_id)
    flash(request, message)
    return redirect(request, f"{_page(contact_id)}#{anchor}")


def _not_valid(request: Request, contact_id: int, message: str, anchor: str) -> Response:
    if htmx_target(request) == SIDEBAR_TARGET:  # a toast, the sidebar stays as it is
        raise InvalidInput(message)
    flash(request, message, "error")
    return redirect(request, f"{_page(contact_id)}#{anchor}")


@router.post("/contacts/{contact_id}/notes")
async def add_note(
    contact_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    body: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
) -> Response:
    try:
        note = ContactNoteIn(body=body)
    except ValidationError:
        return _not_valid(request, contact_id, N_("Write the note first."), "notes-title")
    await contact_notes.add_note(db, agent.principal, contact_id, note.body)
    return await _done(request, db, agent, contact_id, N_("The note is added."), "notes-title")


@router.post("/contacts/{contact_id}/notes/{note_id}/edit")
async def edit_note(
    contact_id: PathId, note_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    body: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
) -> Response:
    try:
        note = ContactNoteIn(body=body)
    except ValidationError:
        return _not_valid(request, contact_id, N_("A note cannot be empty; delete it instead."),
                          f"note-{note_id}")
    await contact_notes.update_note(db, agent.principal, contact_id, note_id, note.body)
    return await _done(request, db, agent, contact_id, N_("The note is saved."),
                       f"note-{note_id}")


@router.post("/contacts/{contact_id}/notes/{note_id}/delete")
async def delete_note(
    contact_id: PathId, note_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
) -> Response:
    await contact_notes.delete_note(db, agent.principal, contact_id, note_id)
    return await _done(request, db, agent, contact_id, N_("The note is deleted."),
                       "notes-title")


@router.post("/contacts/{contact_id}/tags")
async def add_tags(
    contact_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    tag: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """One tag, or several separated by commas."""
    try:
        names = ContactTagsIn(tags=[t for t in tag.split(",") if t.strip()]).tags
    except ValidationError:
        return _not_valid(request, contact_id, N_("A tag is 1 to 100 characters."),
                          "tags-title")
    await contact_tags.add_contact_tags(db, agent.principal, contact_id, names)
    return await _done(request, db, agent, contact_id, N_("The tags are saved."), "tags-title")


@router.post("/contacts/{contact_id}/tags/remove")
async def remove_tag(
    contact_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    tag: Annotated[str, Form(min_length=1, max_length=100)],
) -> Response:
    try:
        names = ContactTagsIn(tags=[tag]).tags
    except ValidationError:
        return _not_valid(request, contact_id, N_("A tag is 1 to 100 characters."),
                          "tags-title")
    await contact_tags.remove_contact_tags(db, agent.principal, contact_id, names)
    return await _done(request, db, agent, contact_id, N_("The tag is removed."), "tags-title")


@router.post("/contacts/{contact_id}/edit")
async def edit_contact(
    contact_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    name: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    phone: Annotated[str, Form(max_length=32)] = "",
    company_id: Annotated[str, Form(max_length=20)] = "",
    new_company: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    chosen_company = int(company_id) if company_id.isdigit() else None
    if new_company.strip():
        chosen_company = await _company_named(db, agent, new_company.strip())
    try:
        patch = ContactUpdate(name=name.strip(), email=email, phone=phone,
                              company_id=chosen_company)
    except ValidationError as exc:
        fields = {str(e["loc"][0]) for e in exc.errors()}
        message = (N_("Enter a valid e-mail address.") if "email" in fields
                   else N_("Enter the phone number with its country code, e.g. +44 20 7946 "
                           "0958.") if "phone" in fields else GENERIC_REFUSAL)
        flash(request, message, "error")
        return redirect(request, _page(contact_id))
    try:
        await contacts.update_contact(db, agent.principal, contact_id, patch)
    except FrontdeskError as exc:
        return _refused(request, exc, _page(contact_id))
    flash(request, N_("The contact is saved."))
    return redirect(request, _page(contact_id))


async def _company_named(db: DbSession, agent: Agent, name: str) -> int:
    """The company of that name, created if it is new (companies are kept by supervisors,
    as in the API: the service refuses an agent)."""
    try:
        company = await contacts.create_company(db, agent.principal, name=name, domain=None,
                                                custom_attributes={})
    except Conflict as exc:  # it exists: the person meant that one
        return int(exc.details["company_id"])
    return company.id


@router.post("/contacts/{contact_id}/attributes")
async def set_attribute(
    contact_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    key: Annotated[str, Form(max_length=ATTRIBUTE_KEY_LIMIT)] = "",
    value: Annotated[str, Form(max_length=ATTRIBUTE_VALUE_LIMIT)] = "",
) -> Response:
    if not key.strip() or not value.strip():
        flash(request, N_("An attribute needs a name and a value."), "error")
        return redirect(request, _page(contact_id))
    patch = ContactUpdate(custom_attributes={key.strip(): value.strip()})
    await contacts.update_contact(db, agent.principal, contact_id, patch)
    flash(request, N_("The attribute is saved."))
    return redirect(request, _page(contact_id))


@router.post("/contacts/{contact_id}/attributes/remove")
async def remove_attribute(
    contact_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    key: Annotated[str, Form(max_length=ATTRIBUTE_KEY_LIMIT)],
) -> Response:
    await contacts.update_contact(db, agent.principal, contact_id,
                                  ContactUpdate(custom_attributes={key: None}))
    flash(request, N_("The attribute is removed."))
    return redirect(request, _page(contact_id))


@router.post("/contacts/{contact_id}/identities/{identity_id}/remove")
async def remove_identity(
    contact_id: PathId, identity_id: PathId, request: Request, db: DbSession,
    agent: CurrentAgent,
) -> Response:
    await contacts.remove_identity(db, agent.principal, contact_id, identity_id)
    flash(request, N_("The identity is removed."))
    return redirect(request, _page(contact_id))


@router.get("/contacts/{contact_id}/merge")
async def merge_page(
    contact_id: PathId, request: Request, db: DbSession, agent: SupervisorAgent,
    q: Annotated[str, Query(max_length=200)] = "",
    other: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    """Step one, a search for the other contact; step two (`other` chosen), both side by
    side and a confirmation: a merge cannot be undone."""
    survivor = await merge_candidate(db, agent.principal, contact_id)
    merged = None
    if other is not None and other != contact_id:
        merged = await merge_candidate(db, agent.principal, other)
    results = []
    if q.strip() and merged is None:
        found, _ = await contacts.list_contacts(db, agent.principal, q=q, cursor=None,
                                                limit=PICKER_SIZE + 1)
        results = [c for c in found if c.id != contact_id][:PICKER_SIZE]
    return render(request, "contacts/merge.html", base_context(
        request, agent, section="contacts", survivor=survivor, merged=merged, q=q,
        results=results, display_name=display_name))


@router.post("/contacts/{contact_id}/merge")
async def merge_contacts(
    contact_id: PathId, request: Request, db: DbSession, agent: SupervisorAgent,
    other_id: Annotated[int, Form(ge=1, le=2**63 - 1)],
) -> Response:
    try:
        await contacts.merge_contacts(db, agent.principal, contact_id, other_id)
    except FrontdeskError as exc:
        return _refused(request, exc, _page(contact_id))
    flash(request, N_("The contacts are merged: one profile, every conversation."))
    return redirect(request, _page(contact_id))


__all__ = ["router"]
