"""The conversation tools in the agent workspace: "Merge into…" in the conversation's head,
a menu on each message (move it, or split it off), "Send later" in the composer with the
list of scheduled replies, and the canned responses the composer's `/` picker offers.
Each route translates a form into one service call."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.canned import service as canned
from frontdesk.conversations import merging, scheduling
from frontdesk.conversations import service as conversations
from frontdesk.conversations.schemas import MoveIn, ScheduledMessageIn, ScheduledMessageUpdate
from frontdesk.core.deps import DbSession
from frontdesk.core.errors import InvalidInput
from frontdesk.core.ids import PathId
from frontdesk.db.base import utcnow
from frontdesk.web.i18n import N_
from frontdesk.web.inbox import contact_history
from frontdesk.web.pages import base_context, local_time, redirect, web_router
from frontdesk.web.session import Agent, CurrentAgent
from frontdesk.web.templating import render

router = web_router()

CONTENT_LIMIT = 65536


def _conversation_id(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise InvalidInput(N_("Choose a conversation."), code="bad_target")
    return int(value)


@router.post("/conversations/{conversation_id}/merge-into")
async def merge_into(
    conversation_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    target_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """This conversation is folded into `target_id`, which the agent then sees."""
    target = _conversation_id(target_id)
    await merging.merge_conversations(db, agent.principal, target, conversation_id)
    return redirect(request, f"/app/conversations/{target}")


@router.get("/conversations/{conversation_id}/messages/{message_id}/move-targets")
async def move_targets(
    conversation_id: PathId, message_id: PathId, request: Request, db: DbSession,
    agent: CurrentAgent, q: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """The contact's conversations a message can move to, a page at a time: those whose
    number or subject matches `q` (the move menu's search), and a "Show more" for the
    next page. Merged ones are left out: they take no messages."""
    conversation = await conversations.get_conversation(db, agent.principal, conversation_id)
    targets, next_cursor = await contact_history(
        db, agent.principal, conversation.contact_id, exclude=conversation.id, cursor=cursor,
        q=q, merged=False)
    return render(request, "partials/move_targets.html", base_context(
        request, agent, conversation_id=conversation.id, message_id=message_id,
        targets=targets, targets_cursor=next_cursor, q=q, searched=bool(q.strip())))


@router.post("/conversations/{conversation_id}/messages/{message_id}/move")
async def move_message(
    conversation_id: PathId, message_id: PathId, request: Request, db: DbSession,
    agent: CurrentAgent, target: Annotated[str, Form(max_length=20)] = "new",
    with_following: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """target: "new" splits the message off, or an id of the contact's conversation."""
    target_id = None if target == "new" else _conversation_id(target)
    moved = await merging.move_messages(
        db, agent.principal, conversation_id, message_id,
        MoveIn(target_conversation_id=target_id, with_following=with_following == "1"))
    return redirect(request, f"/app/conversations/{moved.target.id}")


# --- scheduled replies --------------------------------------------------------------------


def _local_time(value: str, agent: Agent) -> datetime:
    """A `datetime-local` field's value, read in the agent's own time zone."""
    return local_time(value, agent, N_("Choose a date and time to send it."), "bad_send_at")


def _form_error(exc: ValidationError) -> InvalidInput:
    fields = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
    if "content" in fields:
        return InvalidInput(N_("Write a message first."), code="empty_message")
    return InvalidInput(N_("Choose a date and time to send it."), code="bad_send_at")


async def _scheduled(request: Request, db: AsyncSession, agent: Agent,
                     conversation_id: int) -> Response:
    rows = await scheduling.list_scheduled_messages(db, agent.principal, conversation_id,
                                                    waiting_only=True)
    return render(request, "partials/scheduled.html", base_context(
        request, agent, conversation_id=conversation_id, scheduled=rows,
        min_local=utcnow().astimezone(agent.tz).strftime("%Y-%m-%dT%H:%M")))


@router.get("/conversations/{conversation_id}/scheduled")
async def scheduled_list(
    conversation_id: PathId, request: Request, db: DbSession, agent: CurrentAgent
) -> Response:
    return await _scheduled(request, db, agent, conversation_id)


@router.post("/conversations/{conversation_id}/schedule")
async def schedule(
    conversation_id: PathId, request: Request, db: DbSession, agent: CurrentAgent,
    content: Annotated[str, Form(max_length=CONTENT_LIMIT)] = "",
    send_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    try:
        data = ScheduledMessageIn(content=content, send_at=_local_time(send_at, agent))
    except ValidationError as exc:
        raise _form_error(exc) from exc
    await scheduling.schedule_reply(db, agent.principal, conversation_id, data)
    return await _scheduled(request, db, agent, conversation_id)


@router.post("/conversations/{conversation_id}/scheduled/{scheduled_message_id}/edit")
async def edit_scheduled(
    conversation_id: PathId, scheduled_message_id: PathId, request: Request, db: DbSession,
    agent: CurrentAgent, content: Annotated[str, Form(max_length=CONTENT_LIMIT)] = "",
    send_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    try:
        patch = ScheduledMessageUpdate(content=content, send_at=_local_time(send_at, agent))
    except ValidationError as exc:
        raise _form_error(exc) from exc
    await scheduling.update_scheduled_message(db, agent.principal, conversation_id,
                                              scheduled_message_id, patch)
    return await _scheduled(request, db, agent, conversation_id)


@router.post("/conversations/{conversation_id}/scheduled/{scheduled_message_id}/cancel")
async def cancel_scheduled(
    conversation_id: PathId, scheduled_message_id: PathId, request: Request, db: DbSession,
    agent: CurrentAgent,
) -> Response:
    await scheduling.cancel_scheduled_message(db, agent.principal, conversation_id,
                                              scheduled_message_id)
    return await _scheduled(request, db, agent, conversation_id)


# --- canned responses for the composer ----------------------------------------------------


@router.get("/conversations/{conversation_id}/canned")
async def canned_for_conversation(
    conversation_id: PathId, db: DbSession, agent: CurrentAgent
) -> JSONResponse:
    """The member's canned responses with this conversation's placeholders filled in: plain
    text, which the picker puts into the textarea's value (never into HTML)."""
    values = await canned.placeholder_values(db, agent.principal, conversation_id)
    rows = await canned.list_canned_responses(db, agent.principal)
    return JSONResponse({"items": [
        {"id": r.id, "shortcut": r.shortcut, "personal": r.owner_user_id is not None,
         "content": canned.fill_placeholders(r.content, values)}
        for r in rows
    ]})
