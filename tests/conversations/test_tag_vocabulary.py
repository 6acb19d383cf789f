"""The tag vocabulary: usage counts, renaming (merging into an existing tag) and deleting."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event, func, select

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.conversations import tags
from frontdesk.core.events import OutboxEvent
from frontdesk.runtime import Runtime
from tests.apitools import assert_error
from tests.factories import Factory, Workspace


async def _tags_of(api: httpx.AsyncClient, headers: dict[str, str], cid: int) -> list[str]:
    r = await api.get(f"/api/v1/conversations/{cid}", headers=headers)
    return list(r.json()["tags"])


async def test_usage_rename_merge_and_delete(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    first = int((await factory.incoming(ws, inbox))["conversation_id"])
    second = int((await factory.incoming(ws, inbox))["conversation_id"])
    await factory.tag(ws, first, "refund", "vip")
    await factory.tag(ws, second, "refunds", "refund")
    h = ws.admin.headers

    usage = (await api.get("/api/v1/tags/usage", headers=h)).json()["items"]
    assert usage == [{"name": "refund", "conversations": 2},
                     {"name": "refunds", "conversations": 1},
                     {"name": "vip", "conversations": 1}]

    # Renaming to a free name renames it everywhere.
    r = await api.patch("/api/v1/tags/vip", headers=h, json={"name": " VIP-Customer "})
    assert r.status_code == 200 and r.json() == {"name": "vip-customer", "conversations": 1}
    assert await _tags_of(api, h, first) == ["refund", "vip-customer"]

    # Renaming to a name in use merges: every conversation keeps one "refund".
    r = await api.patch("/api/v1/tags/refunds", headers=h, json={"name": "refund"})
    assert r.status_code == 200 and r.json() == {"name": "refund", "conversations": 2}
    assert await _tags_of(api, h, second) == ["refund"]
    names = [t["name"] for t in (await api.get("/api/v1/tags/usage", headers=h)).json()["items"]]
    assert names == ["refund", "vip-customer"]

    r = await api.delete("/api/v1/tags/refund", headers=h)
    assert r.status_code == 204
    assert await _tags_of(api, h, first) == ["vip-customer"]
    assert await _tags_of(api, h, second) == []
    assert_error(await api.delete("/api/v1/tags/refund", headers=h), 404)
    assert (await api.get("/api/v1/tags", headers=h)).json() == {"tags": ["vip-customer"]}


async def test_a_tag_name_must_be_storable(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    conversation = await factory.conversation(ws)
    await factory.tag(ws, conversation["conversation_id"], "billing")
    r = await api.patch("/api/v1/tags/billing", headers=ws.admin.headers, json={"name": "   "})
    assert_error(r, 422)


async def _conversations_tagged(factory: Factory, ws: Workspace, n: int,
                                *tags: str) -> list[int]:
    inbox = await factory.inbox(ws)
    ids = [int((await factory.incoming(ws, inbox))["conversation_id"]) for _ in range(n)]
    r = await factory.api.post("/api/v1/conversations/bulk", headers=ws.admin.headers,
                               json={"ids": ids, "action": "tag", "tags": list(tags)})
    assert r.status_code == 200, r.text
    return ids


async def _last_event_id(runtime: Runtime, ws: Workspace) -> int:
    async with runtime.read_sessions() as session:
        found = (await session.execute(select(func.max(OutboxEvent.id))
                                       .where(OutboxEvent.workspace_id == ws.id))).scalar()
        return int(found or 0)


async def _events_after(runtime: Runtime, ws: Workspace, after: int) -> list[OutboxEvent]:
    async with runtime.read_sessions() as session:
        return list((await session.execute(
            select(OutboxEvent).where(OutboxEvent.workspace_id == ws.id, OutboxEvent.id > after)
            .order_by(OutboxEvent.id))).scalars())


def _tag_changes(events: list[OutboxEvent]) -> dict[int, list[list[str]]]:
    """conversation id -> changes.tags of its conversation.updated event (one each)."""
    found: dict[int, list[list[str]]] = {}
    for e in events:
        assert e.type == "conversation.updated", e.type
        conversation = e.payload["conversation"]
        assert conversation["id"] not in found, "one event per conversation"
        assert e.payload["changes"]["tags"][1] == conversation["tags"]
        found[conversation["id"]] = e.payload["changes"]["tags"]
    return found


async def test_renaming_a_tag_emits_conversation_updated_for_each_conversation_carrying_it(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    refund, both = await _conversations_tagged(factory, ws, 2, "refund")
    await factory.tag(ws, refund, "vip")
    await factory.tag(ws, both, "refunds")
    (other,) = await _conversations_tagged(factory, ws, 1, "other")
    h = ws.admin.headers

    since = await _last_event_id(runtime, ws)
    r = await api.patch("/api/v1/tags/vip", headers=h, json={"name": "priority"})
    assert r.status_code == 200, r.text
    events = await _events_after(runtime, ws, since)
    assert _tag_changes(events) == {refund: [["refund", "vip"], ["priority", "refund"]]}
    assert events[0].payload["actor_user_id"] == ws.admin.user_id

    # Renamed into a tag in use: the conversation that had both keeps one.
    since = await _last_event_id(runtime, ws)
    r = await api.patch("/api/v1/tags/refund", headers=h, json={"name": "refunds"})
    assert r.status_code == 200, r.text
    assert _tag_changes(await _events_after(runtime, ws, since)) == {
        refund: [["priority", "refund"], ["priority", "refunds"]],
        both: [["refund", "refunds"], ["refunds"]],
    }  # and nothing for `other`, which never carried it
    assert other not in _tag_changes(await _events_after(runtime, ws, since))

    # Nothing renamed, nothing told: the same name, or a refused one.
    since = await _last_event_id(runtime, ws)
    assert (await api.patch("/api/v1/tags/refunds", headers=h,
                            json={"name": "Refunds"})).status_code == 200
    assert_error(await api.patch("/api/v1/tags/refunds", headers=h, json={"name": " "}), 422)
    assert await _events_after(runtime, ws, since) == []


async def test_deleting_a_tag_emits_conversation_updated_for_each_conversation_carrying_it(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    first, second = await _conversations_tagged(factory, ws, 2, "refund")
    await factory.tag(ws, first, "vip")
    await _conversations_tagged(factory, ws, 1, "vip")
    since = await _last_event_id(runtime, ws)
    assert (await api.delete("/api/v1/tags/refund", headers=ws.admin.headers)).status_code == 204
    assert _tag_changes(await _events_after(runtime, ws, since)) == {
        first: [["refund", "vip"], ["vip"]],
        second: [["refund"], []],
    }


async def test_the_events_of_a_tag_change_take_as_many_queries_for_30_conversations_as_for_3(
    factory: Factory, runtime: Runtime
) -> None:
    """One pass, not a query per conversation: a tag can be on most of a workspace."""
    statements: list[str] = []
    ours: list[Any] = []

    def count(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if conn in ours:  # not the dispatcher's, which shares the engine on PostgreSQL
            statements.append(statement)

    async def queries_of(change: str, n: int) -> int:
        ws = await factory.api_workspace()
        ids = await _conversations_tagged(factory, ws, n, "refund")
        admin = Principal(ws.admin.user_id, ws.id, Role.ADMIN)
        engine = runtime.write_engine.sync_engine
        async with runtime.sessions() as session:
            await session.execute(select(1))  # the transaction's own start is not counted
            ours[:] = [(await session.connection()).sync_connection]
            statements.clear()
            event.listen(engine, "before_cursor_execute", count)
            try:
                if change == "rename":
                    await tags.rename_tag(session, admin, "refund", "refunds")
                else:
                    await tags.delete_tag(session, admin, "refund")
                await session.flush()
            finally:
                event.remove(engine, "before_cursor_execute", count)
            recorded = (await session.execute(
                select(func.count()).select_from(OutboxEvent)
                .where(OutboxEvent.workspace_id == ws.id,
                       OutboxEvent.type == "conversation.updated"))).scalar_one()
            assert recorded == len(ids)  # in the same transaction, before any commit
            await session.rollback()
        return len(statements)

    for change in ("rename", "delete"):
        assert await queries_of(change, 30) == await queries_of(change, 3), change
