"""The contact page's model: who the customer is, how to reach them, and everything that
happened with them on every channel, as one timeline. Reads only, scoped to the principal's
workspace; changes go through contacts.service from routes_contacts.py."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import User
from frontdesk.accounts.service import Principal, list_members
from frontdesk.channels.models import Inbox
from frontdesk.channels.service import list_inboxes
from frontdesk.contacts import notes as contact_notes
from frontdesk.contacts import service as contacts
from frontdesk.contacts import tags as contact_tags
from frontdesk.contacts.models import Company, Contact, ContactIdentity, ContactNote
from frontdesk.conversations import service as conversations
from frontdesk.conversations.models import Conversation, ConversationTag, Tag
from frontdesk.web import queries
from frontdesk.web.inbox import Row

TIMELINE_PAGE = 50
NOTES_LIMIT = 50
SIDEBAR_NOTES = 3


def display_name(contact: Contact) -> str:
    return contact.name or contact.email or contact.phone or f"#{contact.id}"


@dataclass
class Note:
    note: ContactNote
    author: User | None
    editable: bool  # the viewer wrote it, or supervises


@dataclass
class ContactView:
    contact: Contact
    name: str
    identities: list[ContactIdentity]
    company: Company | None
    companies: list[Company]
    timeline: list[Row]  # their conversations, newest activity first (a page of them)
    timeline_cursor: str | None  # the next page of the timeline
    conversation_count: int
    tags: list[str]  # the contact's own
    conversation_tags: list[tuple[str, int]]  # tag, on how many of their conversations
    notes: list[Note]  # newest first, a page of them
    notes_cursor: str | None  # the next page of notes
    inboxes: dict[int, Inbox]


async def load_contact(
    db: AsyncSession, principal: Principal, contact_id: int, *, notes_cursor: str | None = None
) -> ContactView:
    contact = await contacts.get_contact(db, principal, contact_id)
    notes, next_notes = await contact_notes.list_notes(db, principal, contact.id,
                                                       cursor=notes_cursor, limit=NOTES_LIMIT)
    companies = await contacts.list_companies(db, principal)
    timeline, timeline_cursor = await load_timeline(db, principal, contact.id)
    tag_counts = await _conversation_tag_counts(db, principal, contact.id)
    return ContactView(
        contact=contact, name=display_name(contact),
        identities=await contacts.list_identities(db, contact),
        company=next((c for c in companies if c.id == contact.company_id), None),
        companies=companies,
        timeline=timeline, timeline_cursor=timeline_cursor,
        conversation_count=await _conversation_count(db, principal, contact.id),
        tags=await contact_tags.contact_tags(db, contact),
        conversation_tags=sorted(tag_counts.items(), key=lambda item: (-item[1], item[0])),
        notes=await _with_authors(db, principal, notes),
        notes_cursor=next_notes,
        inboxes={i.id: i for i in await list_inboxes(db, principal)},
    )


async def load_timeline(
    db: AsyncSession, principal: Principal, contact_id: int, cursor: str | None = None
) -> tuple[list[Row], str | None]:
    """A page of the contact's conversations, newest activity first, and the next page's
    cursor."""
    found, next_cursor = await queries.contact_conversations(
        db, principal, contact_id, limit=TIMELINE_PAGE, cursor=cursor)
    outs = await conversations.to_out_many(db, found)
    previews = await queries.last_message_previews(db, principal, [c.id for c in outs])
    return ([Row(conversation=c, contact_name="", preview=previews.get(c.id)) for c in outs],
            next_cursor)


@dataclass
class TimelinePage:
    contact: Contact
    rows: list[Row]
    cursor: str | None  # the page after this one
    inboxes: dict[int, Inbox]


async def load_timeline_page(
    db: AsyncSession, principal: Principal, contact_id: int, cursor: str
) -> TimelinePage:
    """The timeline's page at `cursor`, for its "Show more"."""
    contact = await contacts.get_contact(db, principal, contact_id)
    rows, next_cursor = await load_timeline(db, principal, contact.id, cursor)
    return TimelinePage(contact=contact, rows=rows, cursor=next_cursor,
                        inboxes={i.id: i for i in await list_inboxes(db, principal)})


async def _conversation_tag_counts(
    db: AsyncSession, principal: Principal, contact_id: int
) -> Counter[str]:
    """On how many of the contact's conversations each tag is (all of them, not a page)."""
    rows = await db.execute(
        select(Tag.name, func.count())
        .join(ConversationTag, ConversationTag.tag_id == Tag.id)
        .join(Conversation, Conversation.id == ConversationTag.conversation_id)
        .where(Conversation.workspace_id == principal.workspace_id,
               Conversation.contact_id == contact_id)
        .group_by(Tag.name)
    )
    return Counter({name: int(n) for name, n in rows.tuples()})


@dataclass(frozen=True)
class ContactActivity:
    conversations: int
    last_activity_at: datetime


async def contact_activity(
    db: AsyncSession, principal: Principal, contact_ids: list[int]
) -> dict[int, ContactActivity]:
    """For the contact list: how many conversations each contact has, and the latest
    activity in any of them, from one grouped query."""
    if not contact_ids:
        return {}
    rows = await db.execute(
        select(Conversation.contact_id, func.count(), func.max(Conversation.last_activity_at))
        .where(Conversation.workspace_id == principal.workspace_id,
               Conversation.contact_id.in_(contact_ids))
        .group_by(Conversation.contact_id)
    )
    return {cid: ContactActivity(int(n), last) for cid, n, last in rows.tuples().all()}


async def _conversation_count(db: AsyncSession, principal: Principal, contact_id: int) -> int:
    count = (await db.execute(
        select(func.count()).select_from(Conversation)
        .where(Conversation.workspace_id == principal.workspace_id,
               Conversation.contact_id == contact_id)
    )).scalar_one()
    return int(count)


async def _with_authors(
    db: AsyncSession, principal: Principal, notes: list[ContactNote]
) -> list[Note]:
    if not notes:
        return []
    authors = {u.id: u for u, _ in await list_members(db, principal.workspace_id)}
    return [Note(note=n, author=authors.get(n.author_user_id or 0),
                 editable=contact_notes.may_change(principal, n)) for n in notes]


@dataclass
class ContactSidebar:
    """The conversation view's glance at the contact's own tags and latest notes."""

    contact: Contact
    tags: list[str]
    notes: list[Note]
    more_notes: bool


async def load_sidebar(db: AsyncSession, principal: Principal, contact_id: int) -> ContactSidebar:
    contact = await contacts.get_contact(db, principal, contact_id)
    notes, more = await contact_notes.list_notes(db, principal, contact.id, limit=SIDEBAR_NOTES)
    return ContactSidebar(contact=contact, tags=await contact_tags.contact_tags(db, contact),
                          notes=await _with_authors(db, principal, notes),
                          more_notes=more is not None)


@dataclass
class MergeCandidate:
    contact: Contact
    name: str
    identities: list[ContactIdentity]
    conversations: int
    tags: list[str]
    notes: int


async def merge_candidate(
    db: AsyncSession, principal: Principal, contact_id: int
) -> MergeCandidate:
    contact = await contacts.get_contact(db, principal, contact_id)
    return MergeCandidate(contact=contact, name=display_name(contact),
                          identities=await contacts.list_identities(db, contact),
                          conversations=await _conversation_count(db, principal, contact.id),
                          tags=await contact_tags.contact_tags(db, contact),
                          notes=await contact_notes.count_notes(db, principal, contact.id))
