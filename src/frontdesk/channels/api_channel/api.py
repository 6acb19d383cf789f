from __future__ import annotations

from fastapi import APIRouter, Request, Response

from frontdesk.accounts.auth import CurrentPrincipal
from frontdesk.channels.api_channel.schemas import IncomingAccepted, IncomingMessage
from frontdesk.channels.service import cached_inbox_intake
from frontdesk.contacts.identities import ContactClaim, Identity
from frontdesk.contacts.models import IdentityKind
from frontdesk.conversations.intake import InboundMessage, Intake
from frontdesk.core.deps import get_runtime
from frontdesk.core.errors import Conflict, ErrorOut
from frontdesk.core.ids import PathId

router = APIRouter(tags=["api channel"])

CHANNEL = "api"


@router.post(
    "/inboxes/{inbox_id}/incoming",
    response_model=IncomingAccepted,
    status_code=201,
    responses={200: {"model": IncomingAccepted, "description": "a repeat: already stored"},
               409: {"model": ErrorOut, "description": "not an api inbox (code wrong_channel), "
                                                       "or disabled (code inbox_disabled)"}},
)
async def push_incoming_message(
    inbox_id: PathId, body: IncomingMessage, request: Request, principal: CurrentPrincipal,
) -> Response:
    """Store a customer's message pushed by another system. The contact is matched by any
    identity or created; their open conversation in this inbox continues, or a new one
    opens. The same external_id again answers 200 with the same ids."""
    # The hot path of intake: no session dependency (the inbox's channel is cached and a
    # session is opened only on a miss), no sync dependency (FastAPI would run it in a
    # worker thread), and the answer is written directly instead of through a model.
    runtime = get_runtime(request)
    channel, disabled = await cached_inbox_intake(runtime.read_sessions, principal, inbox_id)
    if channel != CHANNEL:
        raise Conflict("Messages can be pushed only into an inbox of the api channel",
                       code="wrong_channel")
    if disabled:
        raise Conflict(f"Inbox {inbox_id} is disabled and takes no new messages; an admin "
                       "can enable it again", code="inbox_disabled")
    contact = body.contact
    claim = ContactClaim(
        name=contact.name, email=contact.email, phone=contact.phone,
        external_ids=[Identity(IdentityKind.EXTERNAL, contact.identifier, CHANNEL)]
        if contact.identifier else [],
    )
    inbound = InboundMessage(
        workspace_id=principal.workspace_id, inbox_id=inbox_id, external_id=body.external_id,
        contact=claim, content=body.content, subject=body.subject,
        attachments=[a.model_dump() for a in body.attachments],
    )
    result = await runtime.writer.submit(Intake(inbound))
    return Response(
        b'{"message_id":%d,"conversation_id":%d,"contact_id":%d}'
        % (result.message_id, result.conversation_id, result.contact_id),
        status_code=201 if result.created else 200, media_type="application/json",
    )
