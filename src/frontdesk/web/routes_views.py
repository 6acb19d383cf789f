"""Saved views (make one of the list on screen, rename, delete) and bulk actions on the
rows selected in the list. Routes only translate forms to the services and back."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import QueryParams

from frontdesk.conversations import bulk
from frontdesk.conversations.schemas import BULK_LIMIT, BulkAction, BulkIn
from frontdesk.core.deps import DbSession
from frontdesk.core.errors import InvalidInput
from frontdesk.inbox_views import service as inbox_views
from frontdesk.inbox_views.schemas import NAME_LIMIT, ViewCreate, ViewUpdate
from frontdesk.web.i18n import N_
from frontdesk.web.inbox import InboxFilters, Lookups, load_lookups
from frontdesk.web.pages import web_router
from frontdesk.web.routes_inbox import inbox_context
from frontdesk.web.session import Agent, CurrentAgent
from frontdesk.web.templating import query, render

router = web_router()


async def _form_filters(request: Request, agent: Agent) -> InboxFilters:
    """The list's filters, sent along with the form (the #filters form's fields)."""
    form = await request.form()
    fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return InboxFilters.from_query(QueryParams(fields),
                                   default_view="all" if agent.is_supervisor else "mine")


def _view_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput(N_("Give the view a name."), code="empty_name")
    return name


async def _show_list(request: Request, db: DbSession, agent: Agent,
                     filters: InboxFilters) -> Response:
    """The list region for `filters` (with the navigation out of band), and its URL."""
    lookups = await load_lookups(db, agent.principal)
    ctx = await inbox_context(request, db, agent, filters, lookups, view=None)
    return render(request, "partials/list_region.html", {**ctx, "oob_nav": True},
                  headers={"HX-Push-Url": f"/app/inbox?{query(filters.params())}"})


@router.post("/views")
async def create_view(
    request: Request, db: DbSession, agent: CurrentAgent,
    name: Annotated[str, Form(max_length=NAME_LIMIT)] = "",
    shared: Annotated[str, Form()] = "",
) -> Response:
    filters = await _form_filters(request, agent)
    view = await inbox_views.create_view(db, agent.principal, ViewCreate(
        name=_view_name(name), shared=shared == "1", filters=filters.to_view()))
    return await _show_list(request, db, agent, InboxFilters.from_view(filters.to_view(),
                                                                       view.id))


@router.post("/views/{view_id}/rename")
async def rename_view(
    view_id: int, request: Request, db: DbSession, agent: CurrentAgent,
    name: Annotated[str, Form(max_length=NAME_LIMIT)] = "",
) -> Response:
    view = await inbox_views.update_view(db, agent.principal, view_id,
                                         ViewUpdate(name=_view_name(name)))
    return await _show_list(request, db, agent, Lookups.saved_filters(view))


@router.post("/views/{view_id}/delete")
async def delete_view(
    view_id: int, request: Request, db: DbSession, agent: CurrentAgent
) -> Response:
    await inbox_views.delete_view(db, agent.principal, view_id)
    filters = await _form_filters(request, agent)
    filters.saved = None
    return await _show_list(request, db, agent, filters)


@router.post("/inbox/bulk")
async def bulk_action(
    request: Request, db: DbSession, agent: CurrentAgent,
    action: Annotated[str, Form()],
    ids: Annotated[list[str] | None, Form()] = None,
    assign_to: Annotated[str, Form()] = "",
    bulk_tag: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """One action on the selected rows; answers the list again, and the counts."""
    chosen = [int(i) for i in ids or [] if i.isdigit() and len(i) <= 18]
    if not chosen:
        raise InvalidInput(N_("Select conversations first."), code="empty_selection")
    if len(chosen) > BULK_LIMIT:
        raise InvalidInput(N_("Select at most 100 conversations at once."),
                           code="selection_too_large")
    try:
        kind = BulkAction(action)
    except ValueError as exc:
        raise InvalidInput(N_("Choose an action."), code="bad_action") from exc
    assignee_id: int | None = None
    if kind is BulkAction.ASSIGN:
        if assign_to == "me":
            assignee_id = agent.user.id
        elif assign_to.isdigit() and len(assign_to) <= 18:
            assignee_id = int(assign_to)
        elif assign_to:
            raise InvalidInput(N_("Choose someone to assign to."), code="bad_assignee")
    tags = None
    if kind is BulkAction.TAG:
        tags = [t for t in (p.strip() for p in bulk_tag.split(",")) if t]
        if not tags:
            raise InvalidInput(N_("Type a tag to add."), code="empty_tag")
    try:
        body = BulkIn(ids=chosen, action=kind, assignee_id=assignee_id, tags=tags)
    except ValidationError as exc:
        raise InvalidInput(N_("Some of what was sent is not valid."),
                           code="validation_error") from exc
    await bulk.apply_bulk(db, agent.principal, body)
    await db.flush()
    filters = await _form_filters(request, agent)
    lookups = await load_lookups(db, agent.principal)
    ctx = await inbox_context(request, db, agent, filters, lookups, view=None)
    return render(request, "partials/bulk_done.html", ctx)
