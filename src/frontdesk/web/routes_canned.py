"""Settings → Canned responses: every member manages their personal responses here;
supervisors and admins also the workspace's (the service enforces who may change what)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from frontdesk.canned import service as canned
from frontdesk.canned.schemas import CannedResponseIn, CannedResponseUpdate
from frontdesk.core.deps import DbSession
from frontdesk.core.errors import Conflict, Forbidden
from frontdesk.core.ids import PathId
from frontdesk.web.i18n import N_
from frontdesk.web.pages import base_context, flash, redirect, web_router
from frontdesk.web.session import CurrentAgent
from frontdesk.web.templating import render

router = web_router()

PAGE = "/app/settings/canned-responses"
CONTENT_LIMIT = 65536
INVALID = N_("A shortcut is one word of letters, digits, - or _; the text cannot be empty.")


@router.get("/settings/canned-responses")
async def canned_page(request: Request, db: DbSession, agent: CurrentAgent) -> Response:
    rows = await canned.list_canned_responses(db, agent.principal)
    return render(request, "canned_responses.html", base_context(
        request, agent, responses=rows, placeholders=canned.PLACEHOLDERS, section="canned"))


@router.post("/settings/canned-responses")
async def create_canned(
    request: Request, db: DbSession, agent: CurrentAgent,
    shortcut: Annotated[str, Form(max_length=100)] = "",
    content: Annotated[str, Form(max_length=CONTENT_LIMIT)] = "",
    scope: Annotated[str, Form(max_length=20)] = "personal",
) -> Response:
    try:
        data = CannedResponseIn(shortcut=shortcut, content=content,
                                scope="workspace" if scope == "workspace" else "personal")
    except ValidationError:
        flash(request, INVALID, "error")
        return redirect(request, PAGE)
    try:
        await canned.create_canned_response(db, agent.principal, data)
    except Conflict:
        flash(request, N_("That shortcut is taken already."), "error")
        return redirect(request, PAGE)
    except Forbidden:
        flash(request, N_("Only supervisors and admins manage the workspace's responses."),
              "error")
        return redirect(request, PAGE)
    flash(request, N_("The canned response is saved."))
    return redirect(request, PAGE)


@router.post("/settings/canned-responses/{canned_response_id}/edit")
async def edit_canned(
    canned_response_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    shortcut: Annotated[str, Form(max_length=100)] = "",
    content: Annotated[str, Form(max_length=CONTENT_LIMIT)] = "",
) -> Response:
    try:
        patch = CannedResponseUpdate(shortcut=shortcut, content=content)
    except ValidationError:
        flash(request, INVALID, "error")
        return redirect(request, PAGE)
    try:
        await canned.update_canned_response(db, agent.principal, canned_response_id, patch)
    except Conflict:
        flash(request, N_("That shortcut is taken already."), "error")
        return redirect(request, PAGE)
    flash(request, N_("The canned response is saved."))
    return redirect(request, PAGE)


@router.post("/settings/canned-responses/{canned_response_id}/delete")
async def delete_canned(
    canned_response_id: PathId, request: Request, db: DbSession, agent: CurrentAgent
) -> Response:
    await canned.delete_canned_response(db, agent.principal, canned_response_id)
    flash(request, N_("The canned response is deleted."))
    return redirect(request, PAGE)
