"""The real-time WebSocket against a real server: an agent gets their workspace's events
within moments, and only theirs, whatever they ask for."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from frontdesk.core.realtime import CLOSE_TOO_SLOW, QUEUE_LIMIT, RealtimeHub
from tests.processes import (
    Cluster,
    RealtimeClient,
    Server,
    Tenant,
    create_api_inbox,
    json_of,
    push_message,
)

pytestmark = pytest.mark.slow


@dataclass
class Site:
    server: Server
    client: httpx.AsyncClient
    a: Tenant
    b: Tenant
    inbox_a: int
    inbox_b: int

    async def push(self, tenant: Tenant, **kwargs: Any) -> dict[str, Any]:
        inbox = self.inbox_a if tenant is self.a else self.inbox_b
        return json_of(await push_message(self.client, self.server, tenant, inbox, **kwargs))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def site(request: pytest.FixtureRequest,
               make_module_cluster: Callable[[str], Cluster]) -> AsyncIterator[Site]:
    """One server (dispatching itself, as `frontdesk serve` does by default) and two
    workspaces on it."""
    cluster = make_module_cluster(request.param)
    server = cluster.start_server()
    a, b = await cluster.tenant(), await cluster.tenant()
    server.ready()
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        yield Site(server, client, a, b, await create_api_inbox(client, server, a),
                   await create_api_inbox(client, server, b))


def is_event(kind: str, **ids: int) -> Callable[[dict[str, Any]], bool]:
    """Matches {"type": "event"} messages of this type whose data names these ids."""
    def match(message: dict[str, Any]) -> bool:
        if message.get("type") != "event" or message["event"]["type"] != kind:
            return False
        data = message["event"]["data"]
        return all((data.get(key) or {}).get("id") == value for key, value in ids.items())
    return match


async def test_an_agent_receives_the_conversation_and_message_events_of_a_new_message(
    site: Site,
) -> None:
    async with RealtimeClient(site.server, site.a.token) as agent:
        ready = agent.messages[0]
        assert ready == {"type": "ready", "workspace_id": site.a.workspace_id}
        pushed_at = time.monotonic()
        ids = await site.push(site.a, content="Where is my parcel?")
        created = await agent.wait_for(
            is_event("message.created", message=ids["message_id"]),
            what="message.created of the pushed message", timeout=5)
        latency = time.monotonic() - pushed_at
        opened = await agent.wait_for(
            is_event("conversation.created", conversation=ids["conversation_id"]),
            what="conversation.created of its conversation", timeout=5)
    event = created["event"]
    assert set(event) == {"id", "type", "created_at", "data"}
    assert event["data"]["message"]["content"] == "Where is my parcel?"
    assert event["data"]["conversation"]["id"] == ids["conversation_id"]
    assert opened["event"]["id"] < event["id"]  # in the order they happened
    assert latency < 3, f"the event took {latency:.2f} s to arrive"


async def test_an_agent_of_another_workspace_gets_none_of_its_events_even_when_asking(
    site: Site,
) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    first = await site.push(site.a, identifier=customer)
    async with RealtimeClient(site.server, site.a.token) as agent_a, \
            RealtimeClient(site.server, site.b.token) as agent_b:
        # B asks for A's conversation by id: the request narrows B's own stream, it can
        # never widen it into another workspace.
        await agent_b.send({"type": "subscribe", "conversation_ids": [first["conversation_id"]]})
        await agent_b.wait_for(lambda m: m.get("type") == "subscribed", what="subscribed")
        again = await site.push(site.a, identifier=customer, content="Any news?")
        assert again["conversation_id"] == first["conversation_id"]
        await agent_a.wait_for(is_event("message.created", message=again["message_id"]),
                               what="A's own event")
        # B's stream is in commit order: once B has an event committed after A's, anything
        # of A's that was going to reach B has arrived (no sleeping and hoping).
        await agent_b.send({"type": "subscribe", "conversation_ids": None})
        await agent_b.wait_for(lambda m: m.get("type") == "subscribed"
                               and m["conversation_ids"] is None, what="subscribed to all")
        mark = await site.push(site.b, content="B's own message")
        await agent_b.wait_for(is_event("message.created", message=mark["message_id"]),
                               what="B's own later event")
    assert all(e["data"]["message"]["id"] == mark["message_id"]
               for e in agent_b.events if e["type"] == "message.created"), agent_b.events
    leaked = [e for e in agent_b.events if e["data"].get("conversation", {}).get("id")
              in (first["conversation_id"], again["conversation_id"])]
    assert leaked == []


async def test_a_subscription_narrows_the_stream_to_the_chosen_conversations(
    site: Site,
) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    watched = await site.push(site.a, identifier=customer)
    async with RealtimeClient(site.server, site.a.token) as agent:
        await agent.send({"type": "subscribe", "conversation_ids": [watched["conversation_id"]]})
        await agent.wait_for(lambda m: m.get("type") == "subscribed", what="subscribed")
        since = len(agent.messages)
        other = await site.push(site.a)  # another customer: another conversation
        again = await site.push(site.a, identifier=customer, content="hello?")
        await agent.wait_for(is_event("message.created", message=again["message_id"]),
                             what="the watched conversation's new message")
    conversations = {m["event"]["data"]["conversation"]["id"] for m in agent.messages[since:]
                     if m.get("type") == "event" and "conversation" in m["event"]["data"]}
    assert conversations == {watched["conversation_id"]}
    assert other["conversation_id"] != watched["conversation_id"]


async def test_first_message_authentication_works_like_the_header(site: Site) -> None:
    async with RealtimeClient(site.server, site.a.token, auth="message") as agent:
        assert agent.messages[0]["type"] == "ready"
        ids = await site.push(site.a)
        await agent.wait_for(is_event("message.created", message=ids["message_id"]),
                             what="message.created after first-message auth")


@pytest.mark.parametrize("how", ["header", "message", "garbage"])
async def test_a_bad_token_gets_an_error_and_close_code_4401(site: Site, how: str) -> None:
    headers = {"Authorization": "Bearer fd_not-a-real-token"} if how == "header" else {}
    async with connect(site.server.ws_url, additional_headers=headers, proxy=None) as ws:
        if how == "message":
            await ws.send('{"type": "auth", "token": "fd_not-a-real-token"}')
        elif how == "garbage":
            await ws.send("this is not JSON")
        reply = await asyncio.wait_for(ws.recv(), timeout=5)
        await asyncio.wait_for(ws.wait_closed(), timeout=5)
    assert '"unauthorized"' in str(reply)
    assert ws.close_code == 4401


async def test_a_connection_survives_bad_messages_and_answers_pings(site: Site) -> None:
    async with RealtimeClient(site.server, site.a.token) as agent:
        assert agent._ws is not None
        await agent._ws.send(b"\x00\x01binary")
        await agent.send({"type": "subscribe", "conversation_ids": "all of them"})
        await agent.send({"type": "no-such-thing"})
        await agent.send({"type": "ping"})
        await agent.wait_for(lambda m: m.get("type") == "pong", what="pong")
        errors = [m for m in agent.messages if m.get("type") == "error"]
        ids = await site.push(site.a)
        await agent.wait_for(is_event("message.created", message=ids["message_id"]),
                             what="events still flowing after bad messages")
    assert [e["error"]["code"] for e in errors] == ["bad_message"] * 3


async def test_a_client_too_slow_to_keep_up_is_dropped_with_4008_not_waited_for() -> None:
    """In-process, with the hub alone: a burst bigger than a socket's queue must not make
    the dispatcher wait for that socket, nor grow memory without bound."""
    hub = RealtimeHub()
    slow, other = hub.subscribe(1), hub.subscribe(2)
    burst = [(1, {"id": n, "type": "message.created", "data": {}})
             for n in range(QUEUE_LIMIT + 10)]
    await hub.publish_many(burst)  # returns at once: nobody is reading
    assert slow.close_code == CLOSE_TOO_SLOW
    queued = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert queued[-1] is None  # the socket closes once it has sent what fitted
    assert len(queued) <= QUEUE_LIMIT
    assert other.queue.empty()  # and another workspace heard nothing of it
