"""The inbox screen's model: filters read from the URL, list pages through the
conversations service, and the rows, thread and sidebar the templates show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import QueryParams

from frontdesk.accounts.models import Role, Team, User
from frontdesk.accounts.service import Principal, list_members, list_teams
from frontdesk.channels.email import service as email_service
from frontdesk.channels.email.models import EmailRecord
from frontdesk.channels.email.outbound import ReplyRecipients, reply_recipients
from frontdesk.channels.models import ChannelType, Inbox
from frontdesk.channels.service import list_inboxes
from frontdesk.contacts import service as contacts_service
from frontdesk.contacts.models import Contact, ContactIdentity
from frontdesk.conversations import reads
from frontdesk.conversations import service as conversations
from frontdesk.conversations.models import ConversationStatus, Message, Priority
from frontdesk.conversations.schemas import ConversationOut, ConversationSort, MessageOrder
from frontdesk.inbox_views import service as inbox_views
from frontdesk.inbox_views.models import InboxView
from frontdesk.inbox_views.schemas import ViewFilters
from frontdesk.web import queries
from frontdesk.web.templating import CHANNEL_LABELS

PAGE_SIZE = 40
VIEWS = ("mine", "unassigned", "all")
STATUSES = tuple(s.value for s in ConversationStatus)
PRIORITIES = tuple(p.value for p in Priority)
SORTS = tuple(s.value for s in ConversationSort)
THREAD_PAGE = 200  # the latest messages a conversation opens with; earlier ones on request
THREAD_MAX = 2000  # a live refresh keeps what is on screen, up to this many messages
HISTORY_PAGE = 20  # the contact's other conversations in the sidebar, a page at a time


def _int(value: str | None) -> int | None:
    # At most 18 digits: always a storable id, never an overflow in the database.
    return int(value) if value and value.isdigit() and len(value) <= 18 else None


def _choices(value: str | None, allowed: tuple[str, ...]) -> list[str]:
    """A comma-separated list of allowed values (a saved view may hold several)."""
    picked = [v for v in (value or "").split(",") if v in allowed]
    return list(dict.fromkeys(picked))


@dataclass
class InboxFilters:
    view: str = "all"
    status: str = "open"  # one status, several joined by commas, or "any"
    inbox_id: int | None = None
    channel: str | None = None
    team_id: int | None = None
    tag: str | None = None
    priority: str | None = None  # one priority, or several joined by commas
    assignee: int | None = None  # with view "all": one agent's conversations
    q: str | None = None
    sort: str = ConversationSort.NEWEST.value
    saved: int | None = None  # the saved view these filters came from
    unread: bool = False  # only those unread for the agent looking (conversations.reads)
    automatic: bool | None = None  # True: only those automatic mail opened; False: the others

    @classmethod
    def from_query(cls, params: QueryParams, *, default_view: str) -> InboxFilters:
        """Unknown or malformed values fall back to defaults: a hand-edited URL shows a
        list, not an error page."""
        view = params.get("view") or default_view
        status = params.get("status") or "open"
        statuses = _choices(status, STATUSES)
        q = (params.get("q") or "").strip()[:200] or None
        tag = (params.get("tag") or "").strip().lower()[:100] or None
        channel = (params.get("channel") or "").strip()[:32] or None
        sort = params.get("sort") or ConversationSort.NEWEST.value
        return cls(
            view=view if view in VIEWS else default_view,
            status="any" if status == "any" else ",".join(statuses) or "open",
            inbox_id=_int(params.get("inbox_id")),
            channel=channel,
            team_id=_int(params.get("team_id")),
            tag=tag,
            # "urgent,high" (links, saved views) or priority=urgent&priority=high (the
            # filter's checkboxes): the same filter.
            priority=",".join(_choices(",".join(params.getlist("priority")), PRIORITIES))
            or None,
            assignee=_int(params.get("assignee")) if view == "all" else None,
            q=q,
            sort=sort if sort in SORTS else ConversationSort.NEWEST.value,
            saved=_int(params.get("saved")),
            unread=params.get("unread") == "1",
            automatic={"1": True, "0": False}.get(params.get("automatic") or ""),
        )

    @classmethod
    def from_view(cls, filters: ViewFilters, view_id: int) -> InboxFilters:
        """The list a saved view shows."""
        view, assignee = "all", None
        if filters.assignee == "me":
            view = "mine"
        elif filters.assignee == "none":
            view = "unassigned"
        elif filters.assignee is not None:
            assignee = int(filters.assignee)
        return cls(
            view=view, status=",".join(s.value for s in filters.status) or "any",
            inbox_id=filters.inbox_id, channel=filters.channel, team_id=filters.team_id,
            tag=filters.tag, priority=",".join(p.value for p in filters.priority) or None,
            assignee=assignee, q=filters.q, sort=filters.sort.value, saved=view_id,
            automatic=filters.automatic,
        )

    def to_view(self) -> ViewFilters:
        """These filters as a saved view keeps them."""
        assignee = {"mine": "me", "unassigned": "none"}.get(self.view)
        if assignee is None and self.assignee is not None:
            assignee = str(self.assignee)
        return ViewFilters(
            status=[ConversationStatus(s) for s in self.statuses], inbox_id=self.inbox_id,
            channel=self.channel, team_id=self.team_id, tag=self.tag,
            priority=[Priority(p) for p in self.priorities], assignee=assignee, q=self.q,
            sort=ConversationSort(self.sort), automatic=self.automatic,
        )

    def params(self) -> dict[str, Any]:
        return {"view": self.view, "status": self.status, "inbox_id": self.inbox_id,
                "channel": self.channel, "team_id": self.team_id, "tag": self.tag,
                "priority": self.priority, "assignee": self.assignee, "q": self.q,
                "sort": None if self.sort == ConversationSort.NEWEST.value else self.sort,
                "saved": self.saved, "unread": 1 if self.unread else None,
                "automatic": None if self.automatic is None else int(self.automatic)}

    @property
    def statuses(self) -> list[str]:
        return [] if self.status == "any" else self.status.split(",")

    @property
    def priorities(self) -> list[str]:
        return self.priority.split(",") if self.priority else []

    @property
    def sort_order(self) -> ConversationSort:
        return ConversationSort(self.sort)

    def to_service(self) -> conversations.ConversationFilters:
        assignee: str | None = None
        if self.view == "mine":
            assignee = "me"
        elif self.view == "unassigned":
            assignee = "none"
        elif self.assignee is not None:
            assignee = str(self.assignee)
        return conversations.ConversationFilters(
            status=[ConversationStatus(s) for s in self.statuses] or None,
            inbox_id=self.inbox_id, channel=self.channel, assignee=assignee,
            team_id=self.team_id, tag=self.tag,
            priority=[Priority(p) for p in self.priorities] or None, q=self.q,
            unread=True if self.unread else None, automatic=self.automatic,
        )

    def matches(self, c: ConversationOut, me: int,
                channels: dict[int, str] | None = None) -> bool:
        """Would this conversation be listed? For live updates of the open list. A text
        search is not re-evaluated here: under a search, live updates only refresh rows
        already shown. Nor is "unread": a conversation read while the unread list is on
        screen stays in it (shown read) until the list is loaded again, as in a mail
        client. `channels`: each inbox's channel (needed under a channel filter)."""
        if self.statuses and c.status.value not in self.statuses:
            return False
        if self.view == "mine" and c.assignee_id != me:
            return False
        if self.view == "unassigned" and c.assignee_id is not None:
            return False
        if self.assignee is not None and c.assignee_id != self.assignee:
            return False
        if self.inbox_id is not None and c.inbox_id != self.inbox_id:
            return False
        if self.channel is not None and channels is not None \
                and channels.get(c.inbox_id) != self.channel:
            return False
        if self.team_id is not None and c.team_id != self.team_id:
            return False
        if self.tag and self.tag not in c.tags:
            return False
        if self.automatic is not None and c.automatic != self.automatic:
            return False
        return not (self.priorities and c.priority.value not in self.priorities)


async def list_page(
    db: AsyncSession, principal: Principal, filters: InboxFilters, cursor: str | None,
    limit: int = PAGE_SIZE,
) -> tuple[list[ConversationOut], str | None]:
    rows, next_cursor = await conversations.list_conversations(
        db, principal, filters.to_service(), cursor=cursor, limit=limit, sort=filters.sort_order)
    return await conversations.to_out_many(db, rows), next_cursor


@dataclass
class Lookups:
    """Names for ids, loaded once per request."""

    members: dict[int, tuple[User, Role]] = field(default_factory=dict)
    inboxes: dict[int, Inbox] = field(default_factory=dict)
    teams: dict[int, Team] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    views: list[InboxView] = field(default_factory=list)  # saved: shared, then personal

    @property
    def channels(self) -> dict[int, str]:
        """Each inbox's channel."""
        return {i.id: i.channel for i in self.inboxes.values()}

    @property
    def channel_names(self) -> list[str]:
        """The workspace's channels, when it has more than one (else they add nothing)."""
        names = sorted(set(self.channels.values()))
        return names if len(names) > 1 else []

    def saved_view(self, view_id: int | None) -> InboxView | None:
        return next((v for v in self.views if v.id == view_id), None)

    @staticmethod
    def saved_filters(view: InboxView) -> InboxFilters:
        """The list a saved view shows."""
        return InboxFilters.from_view(ViewFilters.model_validate(view.filters), view.id)

    @staticmethod
    def channel_label(channel: str) -> str:
        """The msgid naming a channel (an unknown channel keeps its own name)."""
        return CHANNEL_LABELS.get(channel, channel)

    def user_name(self, user_id: int | None) -> str:
        if user_id is None or user_id not in self.members:
            return ""
        user = self.members[user_id][0]
        return user.name or user.email


async def load_lookups(db: AsyncSession, principal: Principal) -> Lookups:
    return Lookups(
        members={u.id: (u, r) for u, r in await list_members(db, principal.workspace_id)},
        inboxes={i.id: i for i in await list_inboxes(db, principal)},
        teams={t.id: t for t, _ in await list_teams(db, principal.workspace_id)},
        tags=await conversations.list_workspace_tags(db, principal),
        views=await inbox_views.list_views(db, principal),
    )


@dataclass
class Row:
    conversation: ConversationOut
    contact_name: str
    preview: queries.Preview | None
    sort: ConversationSort = ConversationSort.NEWEST
    unread: bool = False  # for the agent looking

    @property
    def sort_key(self) -> str:
        """The row's place in the list's order (`sort_ascending` says which way), as a
        string the live script compares to place a changed row."""
        c = self.conversation
        activity = f"{c.last_activity_at.isoformat()}|{c.id:019d}"
        if self.sort is ConversationSort.PRIORITY:
            return f"{conversations.priority_rank(c.priority.value)}|{activity}"
        if self.sort is ConversationSort.WAITING:
            # Waiting customers first, longest waiting first; then the rest by id.
            waited = c.waiting_since.isoformat() if c.waiting_since else "~"
            return f"{waited}|{c.id:019d}"
        return activity


def sort_ascending(sort: ConversationSort) -> bool:
    return sort in (ConversationSort.OLDEST, ConversationSort.WAITING)


async def build_rows(
    db: AsyncSession, principal: Principal, items: list[ConversationOut],
    sort: ConversationSort = ConversationSort.NEWEST,
) -> list[Row]:
    contacts = await queries.contacts_by_id(db, principal, [c.contact_id for c in items])
    previews = await queries.last_message_previews(db, principal, [c.id for c in items])
    unread = await reads.unread_ids(db, principal, [c.id for c in items])  # the whole page
    return [
        Row(conversation=c, contact_name=_contact_name(contacts.get(c.contact_id)),
            preview=previews.get(c.id), sort=sort, unread=c.id in unread)
        for c in items
    ]


def _contact_name(contact: Contact | None) -> str:
    if contact is None:
        return "?"
    return contact.name or contact.email or contact.phone or f"#{contact.id}"


@dataclass
class ConversationView:
    conversation: ConversationOut
    contact: Contact
    contact_name: str
    identities: list[ContactIdentity]
    messages: list[Message]  # a window of the thread, oldest first, ending at the newest
    earlier_cursor: str | None  # where the messages before the window start, if any
    history: list[Row]  # the contact's other conversations (a page of them)
    history_cursor: str | None  # the next page of them
    inbox: Inbox | None
    may_take: bool  # may the viewer assign it to themselves (the service's rule)
    # Each e-mail message's headers and quoted history (merged threads mix channels), and in
    # an e-mail conversation whom a reply goes to.
    emails: dict[int, EmailRecord] = field(default_factory=dict)
    recipients: ReplyRecipients | None = None


async def load_conversation(
    db: AsyncSession, principal: Principal, conversation_id: int, lookups: Lookups,
    *, earlier_than: str | None = None, keep_from: int | None = None,
) -> ConversationView:
    """The conversation as its page shows it: the latest page of the thread, or with
    `earlier_than` the page before that cursor; `keep_from` widens the window back to that
    message id (a live refresh keeps the earlier pages the agent opened)."""
    conversation = await conversations.get_conversation(db, principal, conversation_id)
    out = await conversations.to_out(db, conversation)
    contact = await contacts_service.get_contact(db, principal, conversation.contact_id)
    identities = await contacts_service.list_identities(db, contact)
    messages, earlier_cursor = await load_thread(db, principal, conversation_id,
                                                 cursor=earlier_than, keep_from=keep_from)
    inbox = lookups.inboxes.get(conversation.inbox_id)
    mail_ids = [m.id for m in messages if _channel_of(lookups, m) == ChannelType.EMAIL.value]
    is_email = inbox is not None and inbox.channel == ChannelType.EMAIL.value
    history, history_cursor = await contact_history(db, principal, contact.id,
                                                    exclude=conversation_id)
    return ConversationView(
        conversation=out, contact=contact, contact_name=_contact_name(contact),
        identities=identities, messages=messages, earlier_cursor=earlier_cursor,
        history=history, history_cursor=history_cursor, inbox=inbox,
        may_take=conversations.may_assign(principal, conversation.assignee_id,
                                          principal.user_id),
        emails=await email_service.email_records(db, principal, mail_ids) if mail_ids else {},
        recipients=await reply_recipients(db, conversation.id) if is_email else None,
    )


def _channel_of(lookups: Lookups, message: Message) -> str | None:
    inbox = lookups.inboxes.get(message.inbox_id)
    return inbox.channel if inbox else None


async def load_thread(
    db: AsyncSession, principal: Principal, conversation_id: int,
    *, cursor: str | None = None, keep_from: int | None = None,
) -> tuple[list[Message], str | None]:
    """A window of the thread, oldest first: the latest `THREAD_PAGE` messages (or those
    before `cursor`), reaching back to message `keep_from` if it is given (whole pages, at
    most `THREAD_MAX` messages); and the cursor of the messages before the window."""
    newest_first: list[Message] = []
    while True:
        page, cursor = await conversations.list_messages(
            db, principal, conversation_id, cursor=cursor, limit=THREAD_PAGE,
            order=MessageOrder.DESC)
        newest_first.extend(page)
        if cursor is None or keep_from is None or not page or page[-1].id <= keep_from \
                or len(newest_first) >= THREAD_MAX:
            break
    newest_first.reverse()
    return newest_first, cursor


async def contact_history(
    db: AsyncSession, principal: Principal, contact_id: int, *, exclude: int,
    cursor: str | None = None, q: str | None = None, merged: bool = True,
) -> tuple[list[Row], str | None]:
    """A page of the contact's other conversations (newest activity first) and the next
    page's cursor; `q` and `merged` narrow them (see queries.contact_conversations)."""
    others, next_cursor = await queries.contact_conversations(
        db, principal, contact_id, limit=HISTORY_PAGE, cursor=cursor, exclude=exclude, q=q,
        merged=merged)
    outs = await conversations.to_out_many(db, others)
    previews = await queries.last_message_previews(db, principal, [c.id for c in outs])
    return ([Row(conversation=c, contact_name="", preview=previews.get(c.id)) for c in outs],
            next_cursor)
