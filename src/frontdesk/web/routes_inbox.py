"""The inbox: views and filters, the list, a conversation with its contact, and the agent's
actions on it. Reads and writes go through the domain services (and web.queries for the
read-only extras); routes only translate between forms and services."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.conversations import reads
from frontdesk.conversations import service as conversations
from frontdesk.conversations.models import ConversationStatus, Priority
from frontdesk.conversations.schemas import (
    AssignIn,
    ConversationOut,
    ConversationUpdate,
    ReplyIn,
    StatusIn,
    TagsIn,
)
from frontdesk.conversations.uploads import upload_key
from frontdesk.core.deps import DbSession
from frontdesk.core.errors import InvalidInput
from frontdesk.core.ids import MAX_ID, PathId
from frontdesk.db.base import utcnow
from frontdesk.inbox_views.schemas import ViewFilters
from frontdesk.web import queries
from frontdesk.web.i18n import N_
from frontdesk.web.inbox import (
    InboxFilters,
    Lookups,
    build_rows,
    contact_history,
    list_page,
    load_conversation,
    load_lookups,
    sort_ascending,
)
from frontdesk.web.pages import base_context, htmx_target, local_time, redirect, web_router
from frontdesk.web.session import Agent, CurrentAgent
from frontdesk.web.templating import query, render

router = web_router()

CONTENT_LIMIT = 65536

def _filters(request: Request, agent: Agent) -> InboxFilters:
    return InboxFilters.from_query(request.query_params,
                                   default_view="all" if agent.is_supervisor else "mine")


async def _counts(db: AsyncSession, agent: Agent, filters: InboxFilters,
                  lookups: Lookups) -> queries.Counts:
    counts = await queries.inbox_counts(db, agent.principal, view=filters.view,
                                        statuses=filters.statuses, inbox_id=filters.inbox_id,
                                        team_id=filters.team_id, channels=lookups.channels)
    await queries.count_saved_views(
        db, agent.principal, counts,
        [(v.id, ViewFilters.model_validate(v.filters).to_service()) for v in lookups.views],
        lookups.channels)
    return counts


async def inbox_context(
    request: Request, db: AsyncSession, agent: Agent, filters: InboxFilters,
    lookups: Lookups, *, with_counts: bool = True, **extra: Any,
) -> dict[str, Any]:
    items, next_cursor = await list_page(db, agent.principal, filters, None)
    view = extra.get("view")
    return base_context(
        request, agent, filters=filters, params=filters.params(), lookups=lookups,
        rows=await build_rows(db, agent.principal, items, filters.sort_order),
        next_cursor=next_cursor, sort_ascending=sort_ascending(filters.sort_order),
        counts=await _counts(db, agent, filters, lookups) if with_counts else None, now=utcnow(),
        active_id=view.conversation.id if view else None, **extra,
    )


@router.get("/inbox")
async def inbox_page(request: Request, db: DbSession, agent: CurrentAgent) -> Response:
    filters = _filters(request, agent)
    lookups = await load_lookups(db, agent.principal)
    target = htmx_target(request)
    # Search and filters redraw the rows alone: no navigation, so no counts.
    ctx = await inbox_context(request, db, agent, filters, lookups, view=None,
                               with_counts=target != "list-results")
    if target == "list-region":  # a view, inbox, team or status: the header changes too
        return render(request, "partials/list_region.html", {**ctx, "oob_nav": True})
    if target == "list-results":  # search and filters: only the rows (keeps the input focus)
        return render(request, "partials/list_results.html", ctx)
    return render(request, "inbox.html", ctx)


@router.get("/inbox/more")
async def inbox_more(request: Request, db: DbSession, agent: CurrentAgent,
                     cursor: str) -> Response:
    filters = _filters(request, agent)
    lookups = await load_lookups(db, agent.principal)
    items, next_cursor = await list_page(db, agent.principal, filters, cursor)
    return render(request, "partials/rows_more.html", base_context(
        request, agent, filters=filters, params=filters.params(), lookups=lookups,
        rows=await build_rows(db, agent.principal, items, filters.sort_order),
        next_cursor=next_cursor, now=utcnow()))


@router.get("/inbox/counts")
async def inbox_counts(request: Request, db: DbSession, agent: CurrentAgent) -> Response:
    filters = _filters(request, agent)
    lookups = await load_lookups(db, agent.principal)
    return render(request, "partials/counts.html", base_context(
        request, agent, filters=filters, params=filters.params(), lookups=lookups,
        counts=await _counts(db, agent, filters, lookups)))


@router.get("/conversations/{conversation_id}")
async def conversation_page(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent
) -> Response:
    filters = _filters(request, agent)
    lookups = await load_lookups(db, agent.principal)
    view = await load_conversation(db, agent.principal, conversation_id, lookups)
    if htmx_target(request) == "pane":
        return render(request, "partials/pane.html", base_context(
            request, agent, filters=filters, params=filters.params(), lookups=lookups,
            view=view, now=utcnow()))
    ctx = await inbox_context(request, db, agent, filters, lookups, view=view)
    return render(request, "inbox.html", ctx)


@router.get("/conversations/{conversation_id}/row")
async def conversation_row(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent
) -> Response:
    """One list row, for the live script: 204 when the conversation no longer belongs in
    the list being shown (so the script removes it)."""
    filters = _filters(request, agent)
    conversation = await conversations.get_conversation(db, agent.principal, conversation_id)
    out = await conversations.to_out(db, conversation)
    channels = (await load_lookups(db, agent.principal)).channels if filters.channel else None
    if not filters.matches(out, agent.user.id, channels):
        return Response(status_code=204)
    return await _render_row(request, db, agent, filters, out)


async def _render_row(
    request: Request, db: AsyncSession, agent: Agent, filters: InboxFilters,
    out: ConversationOut, *, oob: bool = False,
) -> Response:
    lookups = await load_lookups(db, agent.principal)
    rows = await build_rows(db, agent.principal, [out], filters.sort_order)
    return render(request, "partials/row.html", base_context(
        request, agent, filters=filters, params=filters.params(), lookups=lookups,
        row=rows[0], now=utcnow(), oob=oob))


@router.get("/conversations/{conversation_id}/thread")
async def conversation_thread(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent,
    keep_from: Annotated[int | None, Query(alias="from", ge=1, le=MAX_ID)] = None,
) -> Response:
    """The thread again (live updates): its latest page, or back to message `from`, the
    oldest one on screen, so earlier pages the agent opened stay open."""
    return await _thread(request, db, agent, conversation_id, keep_from=keep_from)


def _thread_from(request: Request) -> int | None:
    """The oldest message the page shows (the live script sends it with each action), so a
    thread redrawn after a reply or a change keeps the earlier pages the agent opened."""
    value = request.headers.get("x-thread-from", "")
    return int(value) if value.isdigit() and 0 < len(value) <= 18 and int(value) else None


async def _thread(request: Request, db: AsyncSession, agent: Agent, conversation_id: int,
                  *, keep_from: int | None = None, **extra: Any) -> Response:
    lookups = await load_lookups(db, agent.principal)
    view = await load_conversation(db, agent.principal, conversation_id, lookups,
                                   keep_from=keep_from or _thread_from(request))
    return render(request, "partials/thread.html", base_context(
        request, agent, lookups=lookups, view=view, now=utcnow(), **extra))


@router.get("/conversations/{conversation_id}/earlier")
async def conversation_earlier(
    conversation_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    cursor: Annotated[str, Query(max_length=512)],
) -> Response:
    """The page of messages before `cursor`, for the "Show earlier messages" control at the
    top of the thread (which it replaces, with a new one while more remain)."""
    lookups = await load_lookups(db, agent.principal)
    view = await load_conversation(db, agent.principal, conversation_id, lookups,
                                   earlier_than=cursor)
    return render(request, "partials/thread_earlier_page.html", base_context(
        request, agent, lookups=lookups, view=view, now=utcnow()))


@router.get("/conversations/{conversation_id}/history")
async def conversation_history(
    conversation_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    cursor: Annotated[str, Query(max_length=512)],
) -> Response:
    """The next page of the contact's other conversations, for the sidebar's "Show more"."""
    filters = _filters(request, agent)
    lookups = await load_lookups(db, agent.principal)
    conversation = await conversations.get_conversation(db, agent.principal, conversation_id)
    history, history_cursor = await contact_history(
        db, agent.principal, conversation.contact_id, exclude=conversation.id, cursor=cursor)
    return render(request, "partials/history_items.html", base_context(
        request, agent, params=filters.params(), lookups=lookups, history=history,
        history_cursor=history_cursor, conversation_id=conversation.id, now=utcnow()))


@router.get("/conversations/{conversation_id}/head")
async def conversation_head(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent
) -> Response:
    return await _head(request, db, agent, conversation_id, with_thread=False)


async def _head(request: Request, db: AsyncSession, agent: Agent, conversation_id: int,
                *, with_thread: bool = True) -> Response:
    """The conversation's header and controls; after an action also the thread (its new
    activity line) and the list row, swapped out of band."""
    filters = _filters(request, agent)
    lookups = await load_lookups(db, agent.principal)
    view = await load_conversation(db, agent.principal, conversation_id, lookups,
                                   keep_from=_thread_from(request) if with_thread else None)
    rows = await build_rows(db, agent.principal, [view.conversation], filters.sort_order)
    return render(request, "partials/head.html", base_context(
        request, agent, filters=filters, params=filters.params(), lookups=lookups, view=view,
        row=rows[0], now=utcnow(), with_oob=with_thread,
        row_listed=filters.matches(view.conversation, agent.user.id, lookups.channels)))


@router.post("/conversations/{conversation_id}/reply")
async def reply(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent,
    content: Annotated[str, Form(max_length=CONTENT_LIMIT)] = "",
    mode: Annotated[str, Form()] = "reply",
    recipients: Annotated[str, Form()] = "all",
    upload_ids: Annotated[list[str] | None, Form(max_length=1024)] = None,
) -> Response:
    if not content.strip():
        raise InvalidInput(N_("Write a message first."), code="empty_message")
    note = mode == "note"
    await conversations.reply_to_conversation(
        db, agent.principal, conversation_id,
        ReplyIn(content=content, private=note, reply_all=recipients != "sender",
                upload_ids=[] if note else upload_ids or []),
        upload_key=upload_key(request.app.state.runtime.settings))
    await db.flush()
    return await _thread(request, db, agent, conversation_id, sent=True)


@router.post("/conversations/{conversation_id}/read")
async def mark_read(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent,
    up_to: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """The agent has the conversation in front of them (the page opened it, or a message
    arrived while they looked at it): read up to `up_to`, the newest message shown. The
    live script clears the row's marker; the agent's other tabs hear conversation.read.
    A POST, never part of the GET that shows the conversation: showing is not reading
    (a prefetch, a link preview), and GETs write nothing."""
    up_to_id = int(up_to) if up_to.isdigit() and len(up_to) <= 18 else None
    await reads.mark_conversation_read(db, agent.principal, conversation_id, up_to_id)
    return Response(status_code=204)


@router.post("/conversations/{conversation_id}/unread")
async def mark_unread(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent
) -> Response:
    """Unread again for this agent, as in a mail client: back to the list, where it shows
    unread (staying on it would read it again)."""
    await reads.mark_conversation_unread(db, agent.principal, conversation_id)
    return redirect(request, "/app/inbox?" + query(_filters(request, agent).params()))


@router.post("/conversations/{conversation_id}/assign")
async def assign(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent,
    assignee: Annotated[str, Form()] = "",
) -> Response:
    """assignee: a user id, "me", or empty to unassign."""
    if assignee == "me":
        assignee_id: int | None = agent.user.id
    elif assignee.isdigit():
        assignee_id = int(assignee)
    elif assignee == "":
        assignee_id = None
    else:
        raise InvalidInput(N_("Choose someone to assign to."), code="bad_assignee")
    current = await conversations.get_conversation(db, agent.principal, conversation_id)
    await conversations.assign_conversation(
        db, agent.principal, conversation_id,
        AssignIn(assignee_id=assignee_id, team_id=current.team_id))
    return await _head(request, db, agent, conversation_id)


SNOOZE_CHOICES = ("1h", "tomorrow", "next_week")


def _snooze_until(choice: str, agent: Agent) -> datetime:
    """Snooze presets in the agent's own time zone: 'tomorrow' is 9:00 where they are."""
    now = utcnow().astimezone(agent.tz)
    if choice == "1h":
        return utcnow() + timedelta(hours=1)
    days = 1 if choice == "tomorrow" else 7 - now.weekday()
    morning = (now + timedelta(days=days)).replace(hour=9, minute=0, second=0, microsecond=0)
    return morning


@router.post("/conversations/{conversation_id}/status")
async def change_status(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent,
    status: Annotated[str, Form()], snooze: Annotated[str, Form()] = "",
    snooze_until: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """snooze: a preset (SNOOZE_CHOICES), or "custom" with `snooze_until`, a
    `datetime-local` value in the agent's time zone (read as "Send later" reads its own)."""
    try:
        new_status = ConversationStatus(status)
    except ValueError as exc:
        raise InvalidInput(N_("Choose a status."), code="bad_status") from exc
    until = None
    if new_status is ConversationStatus.SNOOZED and snooze == "custom":
        until = local_time(snooze_until, agent, N_("Choose a date and time to snooze until."),
                           "bad_snooze_until")
        if until <= utcnow():
            raise InvalidInput(N_("Choose a time in the future to snooze until."),
                               code="snooze_in_past")
    elif new_status is ConversationStatus.SNOOZED:
        until = _snooze_until(snooze if snooze in SNOOZE_CHOICES else "tomorrow", agent)
    await conversations.change_status(db, agent.principal, conversation_id,
                                      StatusIn(status=new_status, snoozed_until=until))
    return await _head(request, db, agent, conversation_id)


@router.post("/conversations/{conversation_id}/priority")
async def change_priority(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent,
    priority: Annotated[str, Form()],
) -> Response:
    try:
        value = Priority(priority)
    except ValueError as exc:
        raise InvalidInput(N_("Choose a priority."), code="bad_priority") from exc
    await conversations.update_conversation(db, agent.principal, conversation_id,
                                            ConversationUpdate(priority=value))
    return await _head(request, db, agent, conversation_id)


@router.post("/conversations/{conversation_id}/tags")
async def add_tag(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent,
    tag: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    names = [t for t in (p.strip() for p in tag.split(",")) if t]
    if not names:
        raise InvalidInput(N_("Type a tag to add."), code="empty_tag")
    await conversations.add_tags(db, agent.principal, conversation_id,
                                 TagsIn(tags=names).tags)
    return await _head(request, db, agent, conversation_id)


@router.post("/conversations/{conversation_id}/tags/remove")
async def remove_tag(
    conversation_id: int, request: Request, db: DbSession, agent: CurrentAgent,
    tag: Annotated[str, Form(max_length=100)],
) -> Response:
    await conversations.remove_tag(db, agent.principal, conversation_id, tag)
    return await _head(request, db, agent, conversation_id)


@router.get("/conversations")
async def conversations_root() -> Response:
    return RedirectResponse("/app/inbox", status_code=303)


__all__ = ["router"]
