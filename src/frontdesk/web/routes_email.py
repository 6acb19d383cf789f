"""E-mail in the agent's workspace: a mail's HTML for its sandboxed frame, its original
source and its attachments (the API's downloads, authenticated by the session cookie),
and the files an agent attaches to a reply.

What a mail carries is the sender's, not ours: nothing of it may run in the app's origin.
The HTML is answered under a policy without any script and shown in a frame sandboxed
without scripts or same-origin; every file is a download (`attachment`, nosniff) except
PNG/JPEG/GIF/WebP pictures asked for inline (a mail's `cid:` images), never HTML or SVG.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from frontdesk.channels.email import service as email
from frontdesk.conversations import uploads
from frontdesk.core.deps import DbSession, get_runtime
from frontdesk.core.ids import PathId
from frontdesk.web.pages import base_context, web_router
from frontdesk.web.session import CurrentAgent
from frontdesk.web.templating import render

router = web_router()

# The mail's own document: no script at all, pictures only from us (its inline parts) or
# data:, its inline styles; framed only by our pages. `sandbox`: sandboxed (no script, no
# forms, an opaque origin) even when its URL is opened directly, not in our frame.
MAIL_HTML_POLICY = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
                    "sandbox")
_FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
}

AttachmentNumber = Annotated[int, Path(ge=1, le=10_000)]


@router.get("/messages/{message_id}/email/html")
async def email_html(message_id: PathId, request: Request, db: DbSession,
                     agent: CurrentAgent) -> Response:
    document = await email.get_email_html(db, agent.principal,
                                          get_runtime(request).settings.data_dir, message_id)
    return Response(document, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": MAIL_HTML_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "private, no-store",
    })


@router.get("/messages/{message_id}/email/source")
async def email_source(message_id: PathId, request: Request, db: DbSession,
                       agent: CurrentAgent) -> FileResponse:
    path = await email.get_raw_source(db, agent.principal,
                                      get_runtime(request).settings.data_dir, message_id)
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"message-{message_id}.eml", headers=_FILE_HEADERS)


@router.get("/messages/{message_id}/attachments/{attachment_number}")
async def download_attachment(
    message_id: PathId, attachment_number: AttachmentNumber, request: Request,
    db: DbSession, agent: CurrentAgent, inline: bool = False,
) -> FileResponse:
    found = await email.get_attachment(db, agent.principal,
                                       get_runtime(request).settings.data_dir, message_id,
                                       attachment_number - 1)
    if inline and found.content_type in email.INLINE_IMAGE_TYPES:
        return FileResponse(found.path, media_type=found.content_type,
                            filename=found.filename, content_disposition_type="inline",
                            headers=_FILE_HEADERS)
    return FileResponse(found.path, media_type="application/octet-stream",
                        filename=found.filename, headers=_FILE_HEADERS)


@router.post("/attachments")
async def upload_attachment(request: Request, agent: CurrentAgent) -> Response:
    """Store a file for the reply being written; answers its chip for the composer (the
    chip carries the signed id the reply form sends along)."""
    settings = get_runtime(request).settings
    received = await uploads.read_upload(request, settings.email_max_attachment_bytes)
    stored = await run_in_threadpool(uploads.store_upload, settings, agent.principal,
                                     received.data, received.filename, received.content_type)
    return render(request, "partials/upload_chip.html",
                  base_context(request, agent, upload=stored), status_code=201)
