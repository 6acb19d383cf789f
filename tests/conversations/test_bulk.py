"""Bulk actions (POST /api/v1/conversations/bulk): one request changes every selected
conversation exactly as single changes would (events, activity log, activity lines), or,
when any id is not the workspace's, changes nothing at all."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from frontdesk.accounts.models import Role
from frontdesk.conversations.models import Message, MessageType
from frontdesk.core.activity import ActivityEntry
from frontdesk.core.events import OutboxEvent
from frontdesk.runtime import Runtime
from tests.apitools import assert_error, error_fields
from tests.factories import Factory, Member, Workspace


async def _made(factory: Factory, ws: Workspace, n: int) -> list[int]:
    inbox = await factory.inbox(ws)
    return [int((await factory.incoming(ws, inbox))["conversation_id"]) for _ in range(n)]


async def _bulk(api: httpx.AsyncClient, who: Member, body: dict[str, Any]) -> httpx.Response:
    return await api.post("/api/v1/conversations/bulk", headers=who.headers, json=body)


async def _state(api: httpx.AsyncClient, who: Member, ids: list[int]) -> list[dict[str, Any]]:
    out = []
    for cid in ids:
        r = await api.get(f"/api/v1/conversations/{cid}", headers=who.headers)
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


async def _trail(runtime: Runtime, ws_id: int, ids: list[int]) -> dict[str, Any]:
    """What single changes leave behind, per conversation: events, log rows, lines."""
    async with runtime.read_sessions() as session:
        events = (await session.execute(
            select(OutboxEvent.type, OutboxEvent.payload)
            .where(OutboxEvent.workspace_id == ws_id, OutboxEvent.type.like("conversation.%"))
        )).all()
        log = (await session.execute(
            select(ActivityEntry.subject_id, ActivityEntry.action)
            .where(ActivityEntry.workspace_id == ws_id,
                   ActivityEntry.subject_type == "conversation",
                   ActivityEntry.subject_id.in_(ids))
        )).all()
        lines = (await session.execute(
            select(Message.conversation_id, func.count())
            .where(Message.workspace_id == ws_id, Message.conversation_id.in_(ids),
                   Message.message_type == MessageType.ACTIVITY.value)
            .group_by(Message.conversation_id)
        )).all()
    return {
        "events": sorted((t, p["conversation"]["id"]) for t, p in events
                         if t != "conversation.created"),
        "log": sorted((sid, action) for sid, action in log),
        "lines": dict(lines),
    }


async def test_bulk_resolve_changes_each_conversation_as_a_single_change_would(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    ids = await _made(factory, ws, 3)
    untouched = (await _made(factory, ws, 1))[0]
    r = await _bulk(api, ws.admin, {"ids": ids, "action": "resolve"})
    assert r.status_code == 200, r.text
    assert [c["id"] for c in r.json()["items"]] == ids
    assert {c["status"] for c in await _state(api, ws.admin, ids)} == {"resolved"}
    assert (await _state(api, ws.admin, [untouched]))[0]["status"] == "open"

    trail = await _trail(runtime, ws.id, ids)
    assert trail["events"] == sorted(("conversation.status_changed", cid) for cid in ids)
    assert trail["log"] == sorted((cid, "conversation.status_changed") for cid in ids)
    assert trail["lines"] == dict.fromkeys(ids, 1)

    # Again: already resolved, nothing more is recorded (as for a single change).
    r = await _bulk(api, ws.admin, {"ids": ids, "action": "resolve"})
    assert r.status_code == 200
    assert await _trail(runtime, ws.id, ids) == trail


async def test_bulk_tag_and_assign(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    team = await factory.team(ws, agent)
    ids = await _made(factory, ws, 3)
    r = await _bulk(api, ws.admin, {"ids": ids, "action": "tag", "tags": ["VIP", " refund "]})
    assert r.status_code == 200, r.text
    assert [c["tags"] for c in r.json()["items"]] == [["refund", "vip"]] * 3
    r = await _bulk(api, ws.admin, {"ids": ids[:2], "action": "assign",
                                    "assignee_id": agent.user_id, "team_id": team})
    assert r.status_code == 200, r.text
    states = await _state(api, ws.admin, ids)
    assert [(c["assignee_id"], c["team_id"]) for c in states] == [
        (agent.user_id, team), (agent.user_id, team), (None, None)]
    trail = await _trail(runtime, ws.id, ids)
    assert trail["events"] == sorted(
        [("conversation.tags_changed", cid) for cid in ids]
        + [("conversation.assigned", cid) for cid in ids[:2]])
    r = await api.get("/api/v1/conversations", params={"assignee": "me"}, headers=agent.headers)
    assert sorted(c["id"] for c in r.json()["items"]) == sorted(ids[:2])


async def test_an_id_of_another_workspace_changes_nothing_of_anyone(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    mine, theirs = await factory.api_workspace(), await factory.api_workspace()
    my_ids = await _made(factory, mine, 2)
    their_id = (await _made(factory, theirs, 1))[0]
    before_mine = await _state(api, mine.admin, my_ids)
    before_theirs = await _state(api, theirs.admin, [their_id])
    for action, extra in (("resolve", {}), ("tag", {"tags": ["x"]}),
                          ("assign", {"assignee_id": mine.admin.user_id})):
        r = await _bulk(api, mine.admin, {"ids": [*my_ids, their_id], "action": action,
                                          **extra})
        error = assert_error(r, 404)
        assert error["details"] == [{"field": "body.ids", "message": f"{their_id} was not found"}]
        assert await _state(api, mine.admin, my_ids) == before_mine
        assert await _state(api, theirs.admin, [their_id]) == before_theirs
    assert (await _trail(runtime, theirs.id, [their_id]))["events"] == []
    assert (await _trail(runtime, mine.id, my_ids))["events"] == []
    # An assignee of the other workspace: refused the same way, nothing changed.
    r = await _bulk(api, mine.admin, {"ids": my_ids, "action": "assign",
                                      "assignee_id": theirs.admin.user_id})
    assert_error(r, 404)
    assert await _state(api, mine.admin, my_ids) == before_mine


async def test_an_agent_cannot_bulk_take_another_agents_conversations(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    anna = await factory.api_member(ws, Role.AGENT)
    omar = await factory.api_member(ws, Role.AGENT)
    ids = await _made(factory, ws, 3)
    await factory.assign(ws, ids[1], omar)
    r = await _bulk(api, anna, {"ids": ids, "action": "assign", "assignee_id": anna.user_id})
    assert_error(r, 403)
    # All or nothing: the two free ones were not taken either.
    assert [c["assignee_id"] for c in await _state(api, ws.admin, ids)] == [
        None, omar.user_id, None]
    r = await _bulk(api, anna, {"ids": [ids[0], ids[2]], "action": "assign",
                                "assignee_id": anna.user_id})
    assert r.status_code == 200, r.text


async def test_bulk_bodies_are_checked(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    ids = await _made(factory, ws, 1)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"ids": ids, "action": "tag"}, "body.tags"),
        ({"ids": ids, "action": "resolve", "tags": ["x"]}, "body.tags"),
        ({"ids": ids, "action": "tag", "tags": ["x"], "assignee_id": 1}, "body.assignee_id"),
        ({"ids": [], "action": "resolve"}, "body.ids"),
        ({"ids": list(range(1, 102)), "action": "resolve"}, "body.ids"),
        ({"ids": ids, "action": "delete"}, "body.action"),
        ({"ids": [0], "action": "resolve"}, "body.ids.0"),
    ]
    for body, field in cases:
        r = await _bulk(api, ws.admin, body)
        assert field in error_fields(r), (body, r.text)
    assert (await _state(api, ws.admin, ids))[0]["status"] == "open"
