"""Notes about a contact: what the team should know about the customer whatever the
conversation ("prefers calls after 6 pm", "renewal due in March"). Every member writes them;
the author edits and deletes their own, supervisors and admins anyone's."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.contacts.events import ContactNoteEvent
from frontdesk.contacts.models import ContactNote
from frontdesk.contacts.schemas import ContactNoteOut
from frontdesk.contacts.service import get_contact
from frontdesk.core.activity import record_activity
from frontdesk.core.errors import Forbidden, NotFound
from frontdesk.core.events import EventType, record_event
from frontdesk.core.pagination import decode_id_cursor, encode_cursor
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.db.base import utcnow


async def list_notes(
    session: AsyncSession, principal: Principal, contact_id: int, *, cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[ContactNote], str | None]:
    """Newest first, in keyset pages."""
    contact = await get_contact(session, principal, contact_id)
    stmt = select(ContactNote).where(ContactNote.workspace_id == principal.workspace_id,
                                     ContactNote.contact_id == contact.id)
    if cursor:
        stmt = stmt.where(ContactNote.id < decode_id_cursor(cursor))
    rows = list((await session.execute(
        stmt.order_by(ContactNote.id.desc()).limit(limit + 1))).scalars())
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def count_notes(session: AsyncSession, principal: Principal, contact_id: int) -> int:
    count = (await session.execute(
        select(func.count()).select_from(ContactNote)
        .where(ContactNote.workspace_id == principal.workspace_id,
               ContactNote.contact_id == contact_id)
    )).scalar_one()
    return int(count)


async def add_note(
    session: AsyncSession, principal: Principal, contact_id: int, body: str
) -> ContactNote:
    contact = await get_contact(session, principal, contact_id)
    now = utcnow()  # one instant: a note whose two times differ reads as edited
    note = ContactNote(workspace_id=principal.workspace_id, contact_id=contact.id,
                       author_user_id=principal.user_id, body=body, created_at=now,
                       updated_at=now)
    session.add(note)
    await session.flush()
    _recorded(session, principal, EventType.CONTACT_NOTE_CREATED, note)
    return note


async def update_note(
    session: AsyncSession, principal: Principal, contact_id: int, note_id: int, body: str
) -> ContactNote:
    note = await _own_note(session, principal, contact_id, note_id)
    if note.body != body:
        note.body = body
        note.updated_at = utcnow()
        await session.flush()
        _recorded(session, principal, EventType.CONTACT_NOTE_UPDATED, note)
    return note


async def delete_note(
    session: AsyncSession, principal: Principal, contact_id: int, note_id: int
) -> None:
    note = await _own_note(session, principal, contact_id, note_id)
    _recorded(session, principal, EventType.CONTACT_NOTE_DELETED, note)
    await session.delete(note)
    await session.flush()


async def get_note(
    session: AsyncSession, principal: Principal, contact_id: int, note_id: int
) -> ContactNote:
    """A note of that contact in the principal's workspace; any other is not found."""
    contact = await get_contact(session, principal, contact_id)
    note = await get_in_workspace(session, ContactNote, principal.workspace_id, note_id,
                                  what="Note")
    if note.contact_id != contact.id:
        raise NotFound(f"Note {note_id} of contact {contact_id} was not found")
    return note


def may_change(principal: Principal, note: ContactNote) -> bool:
    return note.author_user_id == principal.user_id or principal.role.at_least(Role.SUPERVISOR)


async def _own_note(
    session: AsyncSession, principal: Principal, contact_id: int, note_id: int
) -> ContactNote:
    note = await get_note(session, principal, contact_id, note_id)
    if not may_change(principal, note):
        raise Forbidden("Only the author or a supervisor changes a note", code="not_yours")
    return note


def _recorded(
    session: AsyncSession, principal: Principal, type_: EventType, note: ContactNote
) -> None:
    record_event(session, principal.workspace_id, type_,
                 ContactNoteEvent(note=ContactNoteOut.model_validate(note)))
    # The activity log keeps who did it, not the text: a deleted note stays deleted.
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action=type_.value, subject_type="contact",
                    subject_id=note.contact_id, changes={"note_id": note.id})
