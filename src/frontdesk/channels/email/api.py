"""E-mail routes: the quarantine (admins), a message's e-mail record, its attachments and
its original source (agents)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, Response

from frontdesk.accounts.auth import AdminPrincipal, CurrentPrincipal
from frontdesk.channels.email import service
from frontdesk.channels.email.schemas import EmailRecordOut, QuarantinedEmailOut, ReprocessedOut
from frontdesk.core.deps import ReadSession, get_runtime
from frontdesk.core.ids import PathId

router = APIRouter(tags=["e-mail"])

# Whatever a file holds, the browser must not run it: no sniffing, no script, no framing.
_FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
}


@router.get("/email/quarantine", response_model=list[QuarantinedEmailOut])
async def list_quarantine(
    db: ReadSession, principal: AdminPrincipal,
    include_reprocessed: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[QuarantinedEmailOut]:
    rows = await service.list_quarantine(db, principal, include_reprocessed=include_reprocessed,
                                         limit=limit)
    return [QuarantinedEmailOut.model_validate(r) for r in rows]


@router.get("/email/quarantine/{quarantine_id}/raw", response_class=Response)
async def download_quarantined(
    quarantine_id: PathId, db: ReadSession, principal: AdminPrincipal,
) -> Response:
    """The quarantined mail exactly as received, as a download."""
    row = await service.get_quarantined(db, principal, quarantine_id)
    return Response(
        row.raw, media_type="application/octet-stream",
        headers={**_FILE_HEADERS,
                 "Content-Disposition": f'attachment; filename="quarantined-{row.id}.eml"'})


@router.post("/email/quarantine/{quarantine_id}/reprocess", response_model=ReprocessedOut)
async def reprocess(
    quarantine_id: PathId, request: Request, principal: AdminPrincipal,
) -> ReprocessedOut:
    """Run a quarantined mail through intake again; it stays listed with its new reason
    if it still cannot be stored."""
    result = await service.reprocess_quarantined(get_runtime(request), principal.workspace_id,
                                                 quarantine_id)
    return ReprocessedOut(status=result.status, message_id=result.message_id,
                          conversation_id=result.conversation_id, reason=result.reason)


@router.get("/messages/{email_message_id}/email", response_model=EmailRecordOut)
async def email_record(
    email_message_id: PathId, db: ReadSession, principal: CurrentPrincipal,
) -> EmailRecordOut:
    """The e-mail side of a message (404 `not_an_email` for a message of another channel)."""
    record = await service.get_email_record(db, principal, email_message_id)
    return EmailRecordOut.model_validate(record)


@router.get("/messages/{email_message_id}/email/source", response_class=FileResponse)
async def email_source(
    email_message_id: PathId, request: Request, db: ReadSession, principal: CurrentPrincipal,
) -> FileResponse:
    """The mail exactly as received, as a download (never rendered)."""
    path = await service.get_raw_source(db, principal, get_runtime(request).settings.data_dir,
                                        email_message_id)
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"message-{email_message_id}.eml", headers=_FILE_HEADERS)


@router.get("/messages/{email_message_id}/attachments/{attachment_number}",
            response_class=FileResponse)
async def download_attachment(
    email_message_id: PathId, attachment_number: Annotated[int, Path(ge=1, le=10_000)],
    request: Request, db: ReadSession, principal: CurrentPrincipal,
    inline: bool = False,
) -> FileResponse:
    """The message's `attachments[attachment_number - 1]` (1: the first) as a download.
    `?inline=true` shows a PNG, JPEG, GIF or WebP picture (a mail's cid: image) in place;
    any other type is still a download."""
    found = await service.get_attachment(db, principal, get_runtime(request).settings.data_dir,
                                         email_message_id, attachment_number - 1)
    if inline and found.content_type in service.INLINE_IMAGE_TYPES:
        return FileResponse(found.path, media_type=found.content_type,
                            filename=found.filename, content_disposition_type="inline",
                            headers=_FILE_HEADERS)
    return FileResponse(found.path, media_type="application/octet-stream",
                        filename=found.filename, headers=_FILE_HEADERS)
