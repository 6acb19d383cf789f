"""The browser's real-time socket: authenticated by the session cookie (never a token in the
page), refused from another site, and presence shared within the workspace only."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.web.conftest import Person, WebServer, World, make_world, signed_in_client


def _socket(server: WebServer, person: Person, *, origin: str | None = None) -> ClientConnection:
    client, _ = signed_in_client(server, person)
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    client.close()
    headers = {"Cookie": cookie, "Origin": origin or server.url}
    return connect(server.url.replace("http", "ws") + "/api/v1/realtime",
                   additional_headers=headers, open_timeout=10)


def _frames(ws: ClientConnection, *, seconds: float) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frames.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
        except ConnectionClosed:
            break
    return frames


def _wait_for(ws: ClientConnection, predicate: Any, seconds: float = 8) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        frame = json.loads(ws.recv(timeout=left))
        if predicate(frame):
            return dict(frame)
    raise AssertionError("the expected frame did not arrive")


def test_the_session_cookie_opens_the_socket_and_events_stream(world: World) -> None:
    with _socket(world.server, world.anna) as ws:
        ready = json.loads(ws.recv(timeout=10))
        assert ready == {"type": "ready", "workspace_id": world.workspace_id}
        ids = world.push("Are you there?", name="Live Customer")
        frame = _wait_for(ws, lambda f: f.get("type") == "event"
                          and f["event"]["type"] == "message.created")
        assert frame["event"]["data"]["conversation"]["id"] == ids["conversation_id"]


def test_a_socket_from_another_site_is_not_signed_in_by_the_cookie(world: World) -> None:
    with _socket(world.server, world.anna, origin="https://evil.example") as ws:
        # Without the cookie the socket waits for a token message, as any API client does.
        ws.send(json.dumps({"type": "auth", "token": "not-a-token"}))
        frames = _frames(ws, seconds=5)
    assert frames and frames[0]["type"] == "error"
    assert frames[0]["error"]["code"] == "unauthorized"


def test_presence_reaches_the_same_workspace_only_and_names_the_real_user(
    web_server: WebServer,
) -> None:
    world, elsewhere = make_world(web_server, conversations=1), make_world(web_server,
                                                                           conversations=0)
    conversation = world.conversations[0]
    with _socket(web_server, world.anna) as anna, _socket(web_server, world.omar) as omar, \
            _socket(web_server, elsewhere.anna) as stranger:
        for ws in (anna, omar, stranger):
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        # The user is whoever the session says, whatever the message claims.
        anna.send(json.dumps({"type": "presence", "conversation_id": conversation,
                              "state": "replying", "user": {"id": 1, "name": "Mallory"}}))
        frame = _wait_for(omar, lambda f: f.get("type") == "event"
                          and f["event"]["type"] == "presence")
        data = frame["event"]["data"]
        assert data == {"conversation": {"id": conversation},
                        "user": {"id": world.anna.user_id, "name": "Anna Agent"},
                        "state": "replying"}
        assert not [f for f in _frames(stranger, seconds=1.0) if f.get("type") == "event"]

        anna.send(json.dumps({"type": "presence", "conversation_id": "x", "state": "dancing"}))
        error = _wait_for(anna, lambda f: f.get("type") == "error")
        assert error["error"]["code"] == "bad_message"


@pytest.mark.parametrize("state", ["viewing", "left"])
def test_presence_states_are_passed_on(world: World, state: str) -> None:
    with _socket(world.server, world.admin) as admin, _socket(world.server, world.anna) as anna:
        for ws in (admin, anna):
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        admin.send(json.dumps({"type": "presence", "conversation_id": world.conversations[0],
                               "state": state}))
        frame = _wait_for(anna, lambda f: f.get("type") == "event"
                          and f["event"]["type"] == "presence")
        assert frame["event"]["data"]["state"] == state


def test_an_agents_read_state_reaches_their_own_sockets_only(world: World) -> None:
    conversation = world.conversations[0]
    with _socket(world.server, world.anna) as desk, _socket(world.server, world.anna) as laptop, \
            _socket(world.server, world.omar) as omar:
        for ws in (desk, laptop, omar):
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        with world.api() as api:
            api.headers["Authorization"] = f"Bearer {world.anna.token}"
            r = api.post(f"/api/v1/conversations/{conversation}/read")
        assert r.status_code == 200, r.text

        for ws in (desk, laptop):
            frame = _wait_for(ws, lambda f: f.get("type") == "event"
                              and f["event"]["type"] == "conversation.read")
            assert frame["event"]["data"] == {
                "conversation": {"id": conversation}, "user_id": world.anna.user_id,
                "unread": False, "last_read_message_id": r.json()["last_read_message_id"]}
        # Omar's socket is live (it gets the next public event) and never got Anna's.
        world.push("Still there?")
        seen = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            frame = json.loads(omar.recv(timeout=deadline - time.monotonic()))
            if frame.get("type") == "event":
                seen.append(frame["event"]["type"])
                if frame["event"]["type"] == "message.created":
                    break
        assert "message.created" in seen and "conversation.read" not in seen
