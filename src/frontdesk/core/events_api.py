"""Dead-lettered events: admins see what the listeners could not deliver, and retry it.

An event whose listeners failed `MAX_ATTEMPTS` times (core.dispatcher) is kept apart with
`failed_at` and its last error; nothing downstream (webhooks, e-mail replies, real-time)
has seen it. Scoped to the caller's workspace: another workspace's id answers 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from frontdesk.accounts.auth import AdminPrincipal
from frontdesk.core import events
from frontdesk.core.deps import DbSession
from frontdesk.core.ids import PathId

router = APIRouter(tags=["events"])


class FailedEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    created_at: datetime
    data: dict[str, Any] = Field(validation_alias="payload")
    attempts: int
    last_error: str | None
    failed_at: datetime | None


class FailedEventPage(BaseModel):
    items: list[FailedEventOut]
    next_cursor: str | None


@router.get("/events/failed", response_model=FailedEventPage)
async def list_failed_events(
    db: DbSession, principal: AdminPrincipal, cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> FailedEventPage:
    """Events the dispatcher gave up on (dead letters), newest first, with their last error."""
    rows, next_cursor = await events.list_failed_events(
        db, principal.workspace_id, cursor=cursor, limit=limit)
    return FailedEventPage(items=[FailedEventOut.model_validate(e) for e in rows],
                           next_cursor=next_cursor)


@router.post("/events/{event_id}/retry", response_model=FailedEventOut, status_code=202,
             responses={409: {"description": "the event is not a failed one "
                                             "(code event_not_failed)"}})
async def retry_failed_event(
    event_id: PathId, db: DbSession, principal: AdminPrincipal,
) -> FailedEventOut:
    """Dispatch a failed event again, with a fresh count of attempts (it is queued: it
    leaves the failed list, and comes back to it if it fails as often again)."""
    return FailedEventOut.model_validate(
        await events.retry_failed_event(db, principal.workspace_id, event_id))
