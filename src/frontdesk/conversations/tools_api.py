"""Routes of the conversation tools: merge, move / split, scheduled replies."""

from __future__ import annotations

from fastapi import APIRouter

from frontdesk.accounts.auth import CurrentPrincipal
from frontdesk.conversations import merging, scheduling
from frontdesk.conversations.schemas import (
    ConversationOut,
    MergeIn,
    MoveIn,
    MoveOut,
    ScheduledMessageIn,
    ScheduledMessageList,
    ScheduledMessageOut,
    ScheduledMessageUpdate,
)
from frontdesk.core.deps import DbSession
from frontdesk.core.ids import PathId

router = APIRouter(tags=["conversations"])


@router.post("/conversations/{conversation_id}/merge", response_model=ConversationOut,
             responses={409: {"description": "different contacts, or one was merged already"}})
async def merge(
    conversation_id: PathId, body: MergeIn, db: DbSession, principal: CurrentPrincipal
) -> ConversationOut:
    """Merge `other_id` into this conversation, which keeps the messages of both; the other
    is closed with `merged_into_id` pointing here. Both must be the same contact's."""
    return await merging.merge_conversations(db, principal, conversation_id, body.other_id)


@router.post("/conversations/{conversation_id}/messages/{message_id}/move",
             response_model=MoveOut,
             responses={409: {"description": "different contacts, or nothing would be left"}})
async def move_messages(
    conversation_id: PathId, message_id: PathId, body: MoveIn, db: DbSession,
    principal: CurrentPrincipal,
) -> MoveOut:
    """Move the message (and with `with_following` the later ones) into another of the
    contact's conversations, or without a target split it off into a new one."""
    return await merging.move_messages(db, principal, conversation_id, message_id, body)


@router.get("/conversations/{conversation_id}/scheduled-messages",
            response_model=ScheduledMessageList)
async def list_scheduled_messages(
    conversation_id: PathId, db: DbSession, principal: CurrentPrincipal
) -> ScheduledMessageList:
    rows = await scheduling.list_scheduled_messages(db, principal, conversation_id)
    return ScheduledMessageList(items=[ScheduledMessageOut.model_validate(r) for r in rows])


@router.post("/conversations/{conversation_id}/scheduled-messages",
             response_model=ScheduledMessageOut, status_code=201)
async def schedule_reply(
    conversation_id: PathId, body: ScheduledMessageIn, db: DbSession,
    principal: CurrentPrincipal,
) -> ScheduledMessageOut:
    """A reply sent at `send_at` as if its author sent it then (events, webhooks, delivery)."""
    row = await scheduling.schedule_reply(db, principal, conversation_id, body)
    return ScheduledMessageOut.model_validate(row)


@router.patch("/conversations/{conversation_id}/scheduled-messages/{scheduled_message_id}",
              response_model=ScheduledMessageOut)
async def update_scheduled_message(
    conversation_id: PathId, scheduled_message_id: PathId, body: ScheduledMessageUpdate,
    db: DbSession, principal: CurrentPrincipal,
) -> ScheduledMessageOut:
    """Change the text or the time while it has not been sent (409 afterwards)."""
    row = await scheduling.update_scheduled_message(db, principal, conversation_id,
                                                    scheduled_message_id, body)
    return ScheduledMessageOut.model_validate(row)


@router.delete("/conversations/{conversation_id}/scheduled-messages/{scheduled_message_id}",
               response_model=ScheduledMessageOut)
async def cancel_scheduled_message(
    conversation_id: PathId, scheduled_message_id: PathId, db: DbSession,
    principal: CurrentPrincipal,
) -> ScheduledMessageOut:
    """Cancel it while it has not been sent; the row stays, with status `cancelled`."""
    row = await scheduling.cancel_scheduled_message(db, principal, conversation_id,
                                                    scheduled_message_id)
    return ScheduledMessageOut.model_validate(row)
