"""IMAP settings and state of an e-mail inbox (admins). The password goes in, never out."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks

from frontdesk.accounts.auth import AdminPrincipal
from frontdesk.channels.email import imap_service
from frontdesk.channels.email.imap_schemas import ImapSettingsIn, ImapSettingsOut
from frontdesk.core.deps import DbSession, ReadSession, RuntimeDep
from frontdesk.core.ids import PathId
from frontdesk.core.secrets import secret_box

router = APIRouter(tags=["e-mail"])


@router.put("/inboxes/{email_inbox_id}/imap", response_model=ImapSettingsOut)
async def configure_imap(
    email_inbox_id: PathId, body: ImapSettingsIn, db: DbSession, principal: AdminPrincipal,
    runtime: RuntimeDep, background: BackgroundTasks,
) -> ImapSettingsOut:
    mailbox = await imap_service.configure_imap(
        db, principal, email_inbox_id, body, box=secret_box(runtime.settings),
        allow_private=runtime.settings.imap_allow_private)
    await db.flush()
    await db.refresh(mailbox)
    # After the response, so after the commit: this process's pollers look at once
    # (other processes notice on their next scan).
    background.add_task(runtime.imap_pollers.wake)
    return imap_service.imap_out(mailbox)


@router.get("/inboxes/{email_inbox_id}/imap", response_model=ImapSettingsOut)
async def get_imap(
    email_inbox_id: PathId, db: ReadSession, principal: AdminPrincipal,
) -> ImapSettingsOut:
    return imap_service.imap_out(await imap_service.get_imap(db, principal, email_inbox_id))
