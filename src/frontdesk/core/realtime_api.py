"""The real-time WebSocket: /api/v1/realtime.

Authenticate with an `Authorization: Bearer` header, or (browsers cannot set headers on
a WebSocket) by sending {"type": "auth", "token": ...} as the first message: a token never
appears in a URL, where access logs would keep it. After {"type": "ready"} the server
streams {"type": "event", "event": {...}} for the workspace of the token (a private event,
such as `conversation.read`, only to connections of the user it concerns). A client may
narrow the stream with {"type": "subscribe", "conversation_ids": [...]}; it can never
widen it beyond its own workspace.

The web UI's pages authenticate with their signed session cookie instead (checked with the
Origin, see frontdesk.web.session), so a page never holds an API token. Browsers also send
{"type": "presence", "conversation_id": ..., "state": "viewing" | "replying" | "left"}; the
hub fans it out, not persisted, to the same workspace only, as an event of type "presence"
(through hub.publish, so it crosses processes over Redis like every other event).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from frontdesk.accounts.auth import resolve_token
from frontdesk.accounts.service import Principal, get_member
from frontdesk.core.errors import NotFound
from frontdesk.core.realtime import CLOSE_GOING_AWAY, Subscription
from frontdesk.db.base import utcnow
from frontdesk.runtime import Runtime

router = APIRouter()

AUTH_TIMEOUT_SECONDS = 10
PRESENCE_STATES = frozenset({"viewing", "replying", "left"})
PRESENCE_PER_SECOND = 5  # a page sends a few per minute; more is a loop or abuse: dropped


async def _authenticate(ws: WebSocket) -> Principal | None:
    header = ws.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return await resolve_token(ws, token.strip())  # type: ignore[arg-type]
    if ws.scope.get("session"):
        from frontdesk.web.session import websocket_principal  # the web UI's cookie

        principal = await websocket_principal(ws)
        if principal is not None:
            return principal
    try:
        first = await asyncio.wait_for(_receive_json(ws), timeout=AUTH_TIMEOUT_SECONDS)
    except (TimeoutError, ValueError, WebSocketDisconnect):
        return None
    if (isinstance(first, dict) and first.get("type") == "auth"
            and isinstance(first.get("token"), str)):
        return await resolve_token(ws, first["token"])  # type: ignore[arg-type]
    return None


async def _receive_json(ws: WebSocket) -> Any:
    """The next client message, parsed. Not `ws.receive_json()`: that one fails with a
    KeyError on a binary frame, which ended the connection abruptly (1006). Here a binary
    frame is a ValueError like any other message that is not JSON text."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        raise ValueError("a binary frame")
    return json.loads(text)


@router.websocket("/api/v1/realtime")
async def realtime(ws: WebSocket) -> None:
    await ws.accept()
    principal = await _authenticate(ws)
    if principal is None:
        await ws.send_json({"type": "error", "error": {
            "code": "unauthorized", "message": "Authenticate with a valid API token"}})
        await ws.close(code=4401)
        return
    runtime: Runtime = ws.app.state.runtime
    sub = runtime.hub.subscribe(principal.workspace_id, principal.user_id)
    try:
        await ws.send_json({"type": "ready", "workspace_id": principal.workspace_id})
        reader = asyncio.create_task(_read_commands(ws, sub, principal, runtime))
        try:
            while True:
                getter = asyncio.create_task(sub.queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    getter.cancel()
                    return
                event = getter.result()
                if event is None:  # overflow, shutdown, missed events: reconnect and resync
                    await ws.close(code=sub.close_code or CLOSE_GOING_AWAY)
                    return
                await ws.send_text(json.dumps({"type": "event", "event": event}))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    except WebSocketDisconnect:
        return
    finally:
        runtime.hub.unsubscribe(sub)


async def _read_commands(
    ws: WebSocket, sub: Subscription, principal: Principal, runtime: Runtime
) -> None:
    presence = _Presence(principal, runtime)
    while True:
        try:
            message: Any = await _receive_json(ws)
        except WebSocketDisconnect:
            return
        except ValueError:
            await ws.send_json({"type": "error", "error": {
                "code": "bad_message", "message": "Send JSON messages"}})
            continue
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await ws.send_json({"type": "pong"})
        elif kind == "subscribe":
            ids = message.get("conversation_ids")
            if ids is None:
                sub.conversation_ids = None
            elif isinstance(ids, list) and all(isinstance(i, int) for i in ids):
                sub.conversation_ids = set(ids)
            else:
                await ws.send_json({"type": "error", "error": {
                    "code": "bad_message", "message": "conversation_ids is a list of ids or null"}})
                continue
            await ws.send_json({"type": "subscribed", "conversation_ids": ids})
        elif kind == "presence":
            conversation_id, state = message.get("conversation_id"), message.get("state")
            if type(conversation_id) is not int or state not in PRESENCE_STATES:
                await ws.send_json({"type": "error", "error": {
                    "code": "bad_message",
                    "message": "presence needs conversation_id (an id) and state "
                               "(viewing, replying or left)"}})
                continue
            await presence.publish(conversation_id, state)
        else:
            await ws.send_json({"type": "error", "error": {
                "code": "bad_message", "message": "Unknown message type"}})


class _Presence:
    """Who is looking at which conversation, as this connection's user says. The user is
    the authenticated one, never what the client claims; the name is looked up once."""

    def __init__(self, principal: Principal, runtime: Runtime) -> None:
        self.principal = principal
        self.runtime = runtime
        self.name: str | None = None
        self.sent: list[float] = []

    async def publish(self, conversation_id: int, state: str) -> None:
        now = time.monotonic()
        self.sent = [t for t in self.sent if t > now - 1.0]
        if len(self.sent) >= PRESENCE_PER_SECOND:
            return
        self.sent.append(now)
        if self.name is None:
            try:
                async with self.runtime.read_sessions() as db:
                    user, _ = await get_member(db, self.principal.workspace_id,
                                               self.principal.user_id)
                self.name = user.name or user.email
            except NotFound:
                return  # the membership is gone; the next reconnect will be refused
        await self.runtime.hub.publish(self.principal.workspace_id, {
            "id": None, "type": "presence", "created_at": utcnow().isoformat(),
            "data": {"conversation": {"id": conversation_id},
                     "user": {"id": self.principal.user_id, "name": self.name},
                     "state": state},
        })
