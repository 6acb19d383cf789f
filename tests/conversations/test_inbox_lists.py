"""The conversation list at the service's edge (GET /api/v1/conversations): the priority and
channel filters, the four sort orders and their keyset pages, and how `waiting_since`
follows the customer's unanswered messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from frontdesk.accounts.models import Role
from frontdesk.channels.models import Inbox
from frontdesk.conversations.models import Conversation
from frontdesk.runtime import Runtime
from tests.apitools import assert_error
from tests.factories import Factory, Member, Workspace

PRIORITY_RANK = {"urgent": 4, "high": 3, "medium": 2, "low": 1, "none": 0}
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


async def _list(api: httpx.AsyncClient, who: Member, **params: Any) -> list[dict[str, Any]]:
    r = await api.get("/api/v1/conversations", params={"limit": 200, **params},
                      headers=who.headers)
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return list(r.json()["items"])


async def _walk(api: httpx.AsyncClient, who: Member, limit: int, **params: Any) -> list[int]:
    """Every id of the list, page by page."""
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(50):
        query: dict[str, Any] = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        r = await api.get("/api/v1/conversations", params=query, headers=who.headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


async def _set(runtime: Runtime, ids: list[int], **values: Any) -> None:
    async with runtime.sessions() as session:
        await session.execute(update(Conversation).where(Conversation.id.in_(ids))
                              .values(**values))
        await session.commit()


async def _varied_workspace(
    factory: Factory, runtime: Runtime
) -> tuple[Workspace, list[int]]:
    """Nine conversations with every priority, waiting and not, and ties on every key."""
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    made = [int((await factory.incoming(ws, inbox))["conversation_id"]) for _ in range(9)]
    priorities = ["urgent", "none", "high", "urgent", "low", "medium", "none", "high", "urgent"]
    for i, (cid, priority) in enumerate(zip(made, priorities, strict=True)):
        # Three pairs share their activity time, two share their waiting time; three
        # have been answered (nobody waits on them).
        activity = T0 + timedelta(minutes=i // 2)
        waiting = None if i in (1, 4, 6) else T0 - timedelta(hours=i // 3)
        await _set(runtime, [cid], priority=priority, last_activity_at=activity,
                   waiting_since=waiting)
    return ws, made


def _expected(items: list[dict[str, Any]], sort: str) -> list[int]:
    def at(c: dict[str, Any], key: str) -> datetime:
        return datetime.fromisoformat(c[key].replace("Z", "+00:00"))

    if sort == "newest":
        items = sorted(items, key=lambda c: (at(c, "last_activity_at"), c["id"]), reverse=True)
    elif sort == "oldest":
        items = sorted(items, key=lambda c: (at(c, "last_activity_at"), c["id"]))
    elif sort == "priority":
        items = sorted(items, key=lambda c: (PRIORITY_RANK[c["priority"]],
                                             at(c, "last_activity_at"), c["id"]), reverse=True)
    else:
        waiting = [c for c in items if c["waiting_since"]]
        rest = [c for c in items if not c["waiting_since"]]
        items = (sorted(waiting, key=lambda c: (at(c, "waiting_since"), c["id"]))
                 + sorted(rest, key=lambda c: c["id"]))
    return [c["id"] for c in items]


@pytest.mark.parametrize("sort", ["newest", "oldest", "waiting", "priority"])
async def test_each_sort_orders_the_whole_list(
    sort: str, api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws, made = await _varied_workspace(factory, runtime)
    items = await _list(api, ws.admin, sort=sort)
    assert sorted(c["id"] for c in items) == sorted(made)
    assert [c["id"] for c in items] == _expected(items, sort)
    if sort == "priority":
        assert [c["priority"] for c in items][:3] == ["urgent"] * 3
        assert items[-1]["priority"] == "none"
    if sort == "waiting":
        assert [c["waiting_since"] is None for c in items] == [False] * 6 + [True] * 3


@pytest.mark.parametrize("sort", ["newest", "oldest", "waiting", "priority"])
@pytest.mark.parametrize("limit", [1, 2, 4])
async def test_keyset_pages_of_every_sort_walk_every_conversation_once(
    sort: str, limit: int, api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws, made = await _varied_workspace(factory, runtime)
    whole = [c["id"] for c in await _list(api, ws.admin, sort=sort)]
    assert await _walk(api, ws.admin, limit, sort=sort) == whole
    # Filters and pages together: within one status, the open ones.
    await _set(runtime, made[:2], status="resolved")
    open_ones = [c["id"] for c in await _list(api, ws.admin, sort=sort, status="open")]
    assert sorted(open_ones) == sorted(made[2:])
    assert await _walk(api, ws.admin, limit, sort=sort, status="open") == open_ones


async def test_a_cursor_of_another_sort_or_a_forged_one_is_refused(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws, _ = await _varied_workspace(factory, runtime)
    r = await api.get("/api/v1/conversations", params={"limit": 2, "sort": "priority"},
                      headers=ws.admin.headers)
    cursor = r.json()["next_cursor"]
    assert cursor
    for sort in ("newest", "waiting"):
        r = await api.get("/api/v1/conversations", params={"sort": sort, "cursor": cursor},
                          headers=ws.admin.headers)
        assert_error(r, 422, "invalid_cursor")
    r = await api.get("/api/v1/conversations", params={"sort": "sideways"},
                      headers=ws.admin.headers)
    assert_error(r, 422)


async def test_priority_and_channel_filters_are_applied_by_the_database(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws, made = await _varied_workspace(factory, runtime)
    urgent = [c["id"] for c in await _list(api, ws.admin, priority="urgent")]
    assert sorted(urgent) == sorted([made[0], made[3], made[8]])
    both = await _list(api, ws.admin, priority=["urgent", "high"], sort="priority")
    assert [c["priority"] for c in both] == ["urgent"] * 3 + ["high"] * 2
    # Deep in a long list a filtered page is still full: no scan limit cuts it short.
    assert len(await _walk(api, ws.admin, 1, priority="high")) == 2

    async with runtime.sessions() as session:
        chat = Inbox(workspace_id=ws.id, name="Site chat", channel="webchat", settings={})
        session.add(chat)
        await session.flush()
        chat_id = chat.id
        await session.commit()
    await _set(runtime, made[:3], inbox_id=chat_id)
    on_chat = [c["id"] for c in await _list(api, ws.admin, channel="webchat")]
    assert sorted(on_chat) == sorted(made[:3])
    on_api = [c["id"] for c in await _list(api, ws.admin, channel="api", priority="urgent")]
    assert sorted(on_api) == sorted([made[3], made[8]])
    assert await _list(api, ws.admin, channel="sms") == []

    # Another workspace's channel of the same name finds nothing of this one.
    other = await factory.api_workspace()
    assert await _list(api, other.admin, channel="webchat") == []
    assert await _list(api, other.admin, priority="urgent") == []


async def test_waiting_since_follows_the_customers_unanswered_messages(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    customer = {"identifier": "waiting-customer"}
    first = await factory.incoming(ws, inbox, **customer)
    cid = first["conversation_id"]

    async def conversation() -> dict[str, Any]:
        r = await api.get(f"/api/v1/conversations/{cid}", headers=ws.admin.headers)
        return dict(r.json())

    opened = await conversation()
    assert opened["waiting_since"] == opened["created_at"]
    # A second message while waiting: still waiting since the first.
    await factory.incoming(ws, inbox, **customer)
    assert (await conversation())["waiting_since"] == opened["created_at"]
    # A private note answers nobody; a public reply does.
    r = await api.post(f"/api/v1/conversations/{cid}/messages", headers=ws.admin.headers,
                       json={"content": "internal", "private": True})
    assert r.status_code == 201
    assert (await conversation())["waiting_since"] == opened["created_at"]
    r = await api.post(f"/api/v1/conversations/{cid}/messages", headers=ws.admin.headers,
                       json={"content": "Here is your answer"})
    assert r.status_code == 201
    assert (await conversation())["waiting_since"] is None
    # The customer writes again: waiting from that message on.
    await factory.incoming(ws, inbox, **customer)
    again = await conversation()
    assert again["waiting_since"] == again["last_activity_at"]
    # Answered and pending (on the customer): their message reopens it, and they wait.
    r = await api.post(f"/api/v1/conversations/{cid}/messages", headers=ws.admin.headers,
                       json={"content": "Could you send a screenshot?"})
    await factory.set_status(ws, cid, "pending")
    assert (await conversation())["waiting_since"] is None
    await factory.incoming(ws, inbox, **customer)
    reopened = await conversation()
    assert reopened["status"] == "open"
    assert reopened["waiting_since"] == reopened["last_activity_at"]
    # Resolved: nobody waits on it any more, answered or not.
    await factory.set_status(ws, cid, "resolved")
    assert (await conversation())["waiting_since"] is None


async def test_the_longest_waiting_customer_comes_first(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    a = (await factory.incoming(ws, inbox, identifier="a"))["conversation_id"]
    b = (await factory.incoming(ws, inbox, identifier="b"))["conversation_id"]
    c = (await factory.incoming(ws, inbox, identifier="c"))["conversation_id"]
    # a is answered, then writes again: now it waits the shortest. b writes more: it still
    # waits since its first message. c is answered and says nothing more.
    for cid in (a, c):
        r = await api.post(f"/api/v1/conversations/{cid}/messages", headers=ws.admin.headers,
                           json={"content": "Answer"})
        assert r.status_code == 201
    await factory.incoming(ws, inbox, identifier="a")
    await factory.incoming(ws, inbox, identifier="b")
    items = await _list(api, ws.admin, sort="waiting")
    assert [i["id"] for i in items] == [b, a, c]
    # Newest activity puts b (its last message) first instead.
    assert (await _list(api, ws.admin))[0]["id"] == b


async def test_an_agent_sees_the_same_sorts_of_their_own_conversations(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws, made = await _varied_workspace(factory, runtime)
    agent = await factory.api_member(ws, Role.AGENT)
    await _set(runtime, made[::2], assignee_id=agent.user_id)
    mine = await _list(api, agent, assignee="me", sort="priority")
    assert sorted(c["id"] for c in mine) == sorted(made[::2])
    assert [c["id"] for c in mine] == _expected(mine, "priority")
