from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from frontdesk.accounts.auth import CurrentPrincipal
from frontdesk.canned import service
from frontdesk.canned.schemas import (
    CannedResponseIn,
    CannedResponseList,
    CannedResponseOut,
    CannedResponseUpdate,
    RenderedCannedResponse,
)
from frontdesk.core.deps import DbSession
from frontdesk.core.ids import PathId, QueryId

router = APIRouter(tags=["canned responses"])


@router.get("/canned-responses", response_model=CannedResponseList)
async def list_canned_responses(
    db: DbSession, principal: CurrentPrincipal,
    q: Annotated[str | None, Query(
        max_length=100, description="a shortcut's start, or text in the content")] = None,
) -> CannedResponseList:
    """The workspace's responses and the caller's personal ones."""
    rows = await service.list_canned_responses(db, principal, q=q)
    return CannedResponseList(items=[service.to_out(r) for r in rows])


@router.post("/canned-responses", response_model=CannedResponseOut, status_code=201)
async def create_canned_response(
    body: CannedResponseIn, db: DbSession, principal: CurrentPrincipal
) -> CannedResponseOut:
    """Placeholders `{{contact.name}}`, `{{agent.name}}` and `{{conversation.id}}` are filled
    in when the response is used (see the render route)."""
    return service.to_out(await service.create_canned_response(db, principal, body))


@router.get("/canned-responses/{canned_response_id}", response_model=CannedResponseOut)
async def get_canned_response(
    canned_response_id: PathId, db: DbSession, principal: CurrentPrincipal
) -> CannedResponseOut:
    return service.to_out(await service.get_canned_response(db, principal, canned_response_id))


@router.patch("/canned-responses/{canned_response_id}", response_model=CannedResponseOut)
async def update_canned_response(
    canned_response_id: PathId, body: CannedResponseUpdate, db: DbSession,
    principal: CurrentPrincipal,
) -> CannedResponseOut:
    return service.to_out(
        await service.update_canned_response(db, principal, canned_response_id, body))


@router.delete("/canned-responses/{canned_response_id}", status_code=204,
               response_class=Response)
async def delete_canned_response(
    canned_response_id: PathId, db: DbSession, principal: CurrentPrincipal
) -> Response:
    await service.delete_canned_response(db, principal, canned_response_id)
    return Response(status_code=204)


@router.get("/canned-responses/{canned_response_id}/render",
            response_model=RenderedCannedResponse)
async def render_canned_response(
    canned_response_id: PathId, db: DbSession, principal: CurrentPrincipal,
    conversation_id: QueryId = None,
) -> RenderedCannedResponse:
    """The response's text for a reply in `conversation_id` (plain text, not HTML)."""
    row, text = await service.render_canned_response(db, principal, canned_response_id,
                                                     conversation_id)
    return RenderedCannedResponse(id=row.id, shortcut=row.shortcut, content=text)
