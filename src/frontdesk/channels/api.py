from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks

from frontdesk.accounts.auth import AdminPrincipal, CurrentPrincipal
from frontdesk.channels import service
from frontdesk.channels.models import Inbox
from frontdesk.channels.schemas import InboxCreate, InboxOut, InboxUpdate
from frontdesk.core.deps import DbSession, RuntimeDep
from frontdesk.core.ids import PathId

router = APIRouter(tags=["inboxes"])


async def _out(db: DbSession, inboxes: list[Inbox]) -> list[InboxOut]:
    return await service.describe_inboxes(db, inboxes)


@router.post("/inboxes", response_model=InboxOut, status_code=201)
async def create_inbox(body: InboxCreate, db: DbSession, principal: AdminPrincipal) -> InboxOut:
    """A new inbox. An e-mail inbox receives at `email` (its primary address) and at the
    other `addresses`; an address another inbox owns answers 409 `email_address_taken`."""
    inbox = await service.create_inbox(db, principal, name=body.name, channel=body.channel,
                                       email=body.email, addresses=body.addresses,
                                       from_name=body.from_name,
                                       signature=body.signature,
                                       auto_acknowledgement=body.auto_acknowledgement)
    return (await _out(db, [inbox]))[0]


@router.get("/inboxes", response_model=list[InboxOut])
async def list_inboxes(db: DbSession, principal: CurrentPrincipal) -> list[InboxOut]:
    return await _out(db, await service.list_inboxes(db, principal))


@router.get("/inboxes/{inbox_id}", response_model=InboxOut)
async def get_inbox(inbox_id: PathId, db: DbSession, principal: CurrentPrincipal) -> InboxOut:
    return (await _out(db, [await service.get_inbox(db, principal, inbox_id)]))[0]


@router.patch("/inboxes/{inbox_id}", response_model=InboxOut)
async def update_inbox(
    inbox_id: PathId, body: InboxUpdate, db: DbSession, principal: AdminPrincipal,
    runtime: RuntimeDep, background: BackgroundTasks,
) -> InboxOut:
    """Rename an inbox, or change an e-mail inbox's settings and addresses (only the fields
    sent; `addresses` is the whole list and must hold the primary address, 422
    `primary_address_required`), or disable (`disabled`: true) and enable it again."""
    inbox = await service.update_inbox(db, principal, inbox_id, name=body.name,
                                       email_settings=body.email_settings(),
                                       addresses=body.addresses, disabled=body.disabled)
    if body.disabled is not None:
        # After the commit: this process's IMAP pollers stop (or resume) the inbox's
        # mailbox at once; other processes notice on their next scan.
        background.add_task(runtime.imap_pollers.wake)
    return (await _out(db, [inbox]))[0]
