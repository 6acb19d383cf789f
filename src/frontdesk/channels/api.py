from __future__ import annotations

from fastapi import APIRouter

from frontdesk.accounts.auth import AdminPrincipal, CurrentPrincipal
from frontdesk.channels import service
from frontdesk.channels.schemas import InboxCreate, InboxOut, InboxUpdate
from frontdesk.core.deps import DbSession
from frontdesk.core.ids import PathId

router = APIRouter(tags=["inboxes"])


@router.post("/inboxes", response_model=InboxOut, status_code=201)
async def create_inbox(body: InboxCreate, db: DbSession, principal: AdminPrincipal) -> InboxOut:
    inbox = await service.create_inbox(db, principal, name=body.name, channel=body.channel,
                                       email=body.email, from_name=body.from_name,
                                       signature=body.signature,
                                       auto_acknowledgement=body.auto_acknowledgement)
    return InboxOut.model_validate(inbox)


@router.get("/inboxes", response_model=list[InboxOut])
async def list_inboxes(db: DbSession, principal: CurrentPrincipal) -> list[InboxOut]:
    return [InboxOut.model_validate(i) for i in await service.list_inboxes(db, principal)]


@router.get("/inboxes/{inbox_id}", response_model=InboxOut)
async def get_inbox(inbox_id: PathId, db: DbSession, principal: CurrentPrincipal) -> InboxOut:
    return InboxOut.model_validate(await service.get_inbox(db, principal, inbox_id))


@router.patch("/inboxes/{inbox_id}", response_model=InboxOut)
async def update_inbox(
    inbox_id: PathId, body: InboxUpdate, db: DbSession, principal: AdminPrincipal
) -> InboxOut:
    """Rename an inbox, or change an e-mail inbox's settings (only the fields sent)."""
    inbox = await service.update_inbox(db, principal, inbox_id, name=body.name,
                                       email_settings=body.email_settings())
    return InboxOut.model_validate(inbox)
