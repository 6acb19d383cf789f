"""Merging two conversations of one customer into one (POST /conversations/{id}/merge)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from frontdesk.accounts.models import Role
from frontdesk.core.events import OutboxEvent
from frontdesk.runtime import Runtime
from tests.apitools import assert_error
from tests.factories import Factory, Workspace, unique


async def _two_threads(factory: Factory, ws: Workspace) -> tuple[int, int, str]:
    """Two conversations of one contact (through two inboxes), each with a message."""
    who = unique("cust")
    first = await factory.incoming(ws, await factory.inbox(ws), content="first thread",
                                   identifier=who)
    second = await factory.incoming(ws, await factory.inbox(ws), content="second thread",
                                    identifier=who)
    assert first["contact_id"] == second["contact_id"]
    return first["conversation_id"], second["conversation_id"], who


async def _messages(api: httpx.AsyncClient, ws: Workspace, cid: int) -> list[dict[str, Any]]:
    r = await api.get(f"/api/v1/conversations/{cid}/messages", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _merge(api: httpx.AsyncClient, ws: Workspace, into: int, other: int,
                 headers: dict[str, str] | None = None) -> httpx.Response:
    return await api.post(f"/api/v1/conversations/{into}/merge",
                          headers=headers or ws.admin.headers, json={"other_id": other})


async def test_the_survivor_keeps_both_threads_in_order_and_the_other_points_to_it(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    a, b, who = await _two_threads(factory, ws)
    inbox_a = (await api.get(f"/api/v1/conversations/{a}", headers=ws.admin.headers)).json()
    # A later customer message in the first thread: the merged thread interleaves them.
    await factory.incoming(ws, inbox_a["inbox_id"], content="first thread, later",
                           identifier=who)
    await factory.tag(ws, a, "billing")
    await factory.tag(ws, b, "vip", "billing")
    agent = await factory.api_member(ws, Role.AGENT)
    await factory.assign(ws, b, agent)

    r = await _merge(api, ws, a, b)
    assert r.status_code == 200, r.text
    survivor = r.json()
    assert survivor["id"] == a
    assert survivor["tags"] == ["billing", "vip"]
    assert survivor["assignee_id"] == agent.user_id  # the survivor had nobody; b's agent
    assert survivor["merged_into_id"] is None

    thread = await _messages(api, ws, a)
    texts = [m["content"] for m in thread if m["message_type"] == "incoming"]
    assert texts == ["first thread", "second thread", "first thread, later"]
    times = [m["created_at"] for m in thread]
    assert times == sorted(times)
    assert thread[-1]["message_type"] == "activity"
    assert thread[-1]["content"] == f"Merged #{b} into this"

    other = (await api.get(f"/api/v1/conversations/{b}", headers=ws.admin.headers)).json()
    assert other["status"] == "closed" and other["merged_into_id"] == a
    left = await _messages(api, ws, b)
    assert [m["content"] for m in left] == [f"Merged into #{a}"]  # only its activity line

    async with runtime.read_sessions() as session:
        events = (await session.execute(
            select(OutboxEvent.type, OutboxEvent.payload).where(OutboxEvent.workspace_id == ws.id)
            .order_by(OutboxEvent.id.desc()).limit(2))).all()
    assert events[0].type == "conversation.merged"
    assert events[0].payload["changes"]["merged_conversation_id"] == b
    assert events[0].payload["changes"]["messages_moved"] == 2  # its message and assignment
    assert events[1].type == "conversation.status_changed"
    assert events[1].payload["conversation"]["merged_into_id"] == a


async def test_a_resolved_survivor_reopens_when_the_other_was_still_open(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    a, b, _ = await _two_threads(factory, ws)
    await factory.set_status(ws, a, "resolved")
    r = await _merge(api, ws, a, b)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "open"


async def test_merging_is_refused_across_contacts_twice_and_with_itself(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    a, b, _ = await _two_threads(factory, ws)
    stranger = (await factory.conversation(ws))["conversation_id"]

    assert_error(await _merge(api, ws, a, stranger), 409, "different_contacts")
    assert_error(await _merge(api, ws, a, a), 422, "same_conversation")
    assert (await _merge(api, ws, a, b)).status_code == 200
    assert_error(await _merge(api, ws, a, b), 409, "already_merged")
    assert_error(await _merge(api, ws, b, a), 409, "already_merged")
    # Nothing of the refused merge with the stranger happened.
    assert [m["content"] for m in await _messages(api, ws, stranger)] == ["Hello, I need help"]


async def test_another_workspaces_conversation_is_not_found_either_way(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other_ws = await factory.api_workspace(), await factory.api_workspace()
    a, _, _ = await _two_threads(factory, ws)
    theirs = (await factory.conversation(other_ws))["conversation_id"]
    assert_error(await _merge(api, ws, a, theirs), 404)
    assert_error(await _merge(api, ws, theirs, a), 404)
    assert_error(await _merge(api, other_ws, a, theirs, other_ws.admin.headers), 404)
    assert [m["content"] for m in await _messages(api, other_ws, theirs)] == [
        "Hello, I need help"]


async def test_contacts_merged_first_can_have_their_conversations_merged(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    one = await factory.conversation(ws)
    two = await factory.conversation(ws)
    assert_error(await _merge(api, ws, one["conversation_id"], two["conversation_id"]), 409,
                 "different_contacts")
    r = await api.post(f"/api/v1/contacts/{one['contact_id']}/merge", headers=ws.admin.headers,
                       json={"merge_id": two["contact_id"]})
    assert r.status_code == 200, r.text
    r = await _merge(api, ws, one["conversation_id"], two["conversation_id"])
    assert r.status_code == 200, r.text


async def test_an_agent_merges_only_their_own_or_unassigned_conversations(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    anna, omar = (await factory.api_member(ws, Role.AGENT),
                  await factory.api_member(ws, Role.AGENT))
    boss = await factory.api_member(ws, Role.SUPERVISOR)
    a, b, _ = await _two_threads(factory, ws)
    await factory.assign(ws, b, omar)
    assert_error(await _merge(api, ws, a, b, anna.headers), 403, "not_yours")
    assert_error(await _merge(api, ws, b, a, anna.headers), 403, "not_yours")
    r = await _merge(api, ws, a, b, boss.headers)
    assert r.status_code == 200, r.text


async def _event_count(runtime: Runtime, ws: Workspace) -> int:
    async with runtime.read_sessions() as session:
        rows = await session.execute(
            select(OutboxEvent.id).where(OutboxEvent.workspace_id == ws.id))
        return len(rows.all())


async def test_reply_or_note_to_a_merged_conversation_is_refused_with_409_and_nothing_stored(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    a, b, _ = await _two_threads(factory, ws)
    assert (await _merge(api, ws, a, b)).status_code == 200
    survivor_before = await _messages(api, ws, a)
    events_before = await _event_count(runtime, ws)

    for body in ({"content": "Are you still there?"},
                 {"content": "Internal: call them back", "private": True}):
        r = await api.post(f"/api/v1/conversations/{b}/messages", headers=ws.admin.headers,
                           json=body)
        error = assert_error(r, 409, "conversation_merged")
        assert f"merged into conversation {a}" in error["message"]
        assert error["details"] == {"conversation_id": b, "merged_into_id": a}

    assert [m["content"] for m in await _messages(api, ws, b)] == [f"Merged into #{a}"]
    assert await _messages(api, ws, a) == survivor_before
    assert await _event_count(runtime, ws) == events_before
    # The conversation it went into takes the reply.
    r = await api.post(f"/api/v1/conversations/{a}/messages", headers=ws.admin.headers,
                       json={"content": "Are you still there?"})
    assert r.status_code == 201, r.text


async def test_a_merged_conversation_stays_closed_its_status_change_is_refused_with_409(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    a, b, _ = await _two_threads(factory, ws)
    assert (await _merge(api, ws, a, b)).status_code == 200
    events_before = await _event_count(runtime, ws)
    for status in ("open", "resolved", "closed"):
        r = await api.post(f"/api/v1/conversations/{b}/status", headers=ws.admin.headers,
                           json={"status": status})
        assert_error(r, 409, "conversation_merged")
    r = await api.post("/api/v1/conversations/bulk", headers=ws.admin.headers,
                       json={"ids": [a, b], "action": "resolve"})
    assert_error(r, 409, "conversation_merged")
    other = (await api.get(f"/api/v1/conversations/{b}", headers=ws.admin.headers)).json()
    assert other["status"] == "closed" and other["merged_into_id"] == a
    survivor = (await api.get(f"/api/v1/conversations/{a}", headers=ws.admin.headers)).json()
    assert survivor["status"] == "open"  # the refused bulk changed none of the selection
    assert await _event_count(runtime, ws) == events_before
