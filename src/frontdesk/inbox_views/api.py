from __future__ import annotations

from fastapi import APIRouter, Response

from frontdesk.accounts.auth import CurrentPrincipal
from frontdesk.core.deps import DbSession
from frontdesk.core.ids import PathId
from frontdesk.inbox_views import service
from frontdesk.inbox_views.schemas import ViewCreate, ViewList, ViewOut, ViewUpdate

router = APIRouter(tags=["views"])


@router.get("/views", response_model=ViewList)
async def list_views(db: DbSession, principal: CurrentPrincipal) -> ViewList:
    """The workspace's shared views and the caller's personal ones."""
    return ViewList(items=[ViewOut.model_validate(v)
                           for v in await service.list_views(db, principal)])


@router.post("/views", response_model=ViewOut, status_code=201)
async def create_view(body: ViewCreate, db: DbSession, principal: CurrentPrincipal) -> ViewOut:
    """A personal view, or with `shared` (supervisors and admins) one for everyone."""
    return ViewOut.model_validate(await service.create_view(db, principal, body))


@router.get("/views/{view_id}", response_model=ViewOut)
async def get_view(view_id: PathId, db: DbSession, principal: CurrentPrincipal) -> ViewOut:
    return ViewOut.model_validate(await service.get_view(db, principal, view_id))


@router.patch("/views/{view_id}", response_model=ViewOut)
async def update_view(
    view_id: PathId, body: ViewUpdate, db: DbSession, principal: CurrentPrincipal
) -> ViewOut:
    return ViewOut.model_validate(await service.update_view(db, principal, view_id, body))


@router.delete("/views/{view_id}", status_code=204, response_class=Response)
async def delete_view(view_id: PathId, db: DbSession, principal: CurrentPrincipal) -> Response:
    await service.delete_view(db, principal, view_id)
    return Response(status_code=204)
