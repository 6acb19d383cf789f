"""Each agent's read state of conversations (conversations.reads), through the REST API and
the service: which conversations are unread for whom, and how reading moves it."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.conversations import reads
from frontdesk.core.events import OutboxEvent
from frontdesk.runtime import Runtime
from tests.apitools import assert_error
from tests.factories import Factory, Member, Workspace


async def _unread(api: httpx.AsyncClient, who: Member, cid: int) -> bool:
    r = await api.get(f"/api/v1/conversations/{cid}", headers=who.headers)
    assert r.status_code == 200, r.text
    return bool(r.json()["unread"])


async def _read(api: httpx.AsyncClient, who: Member, cid: int,
                body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await api.post(f"/api/v1/conversations/{cid}/read", headers=who.headers, json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _mark_unread(api: httpx.AsyncClient, who: Member, cid: int) -> dict[str, Any]:
    r = await api.post(f"/api/v1/conversations/{cid}/unread", headers=who.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _reply(api: httpx.AsyncClient, who: Member, cid: int, *, private: bool = False) -> int:
    r = await api.post(f"/api/v1/conversations/{cid}/messages", headers=who.headers,
                       json={"content": "On it", "private": private})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _read_events(runtime: Runtime, ws: Workspace) -> list[dict[str, Any]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(OutboxEvent.payload).where(OutboxEvent.workspace_id == ws.id,
                                              OutboxEvent.type == "conversation.read")
            .order_by(OutboxEvent.id))
        return [dict(p) for p in rows.scalars()]


async def _setup(factory: Factory) -> tuple[Workspace, Member, Member, int]:
    ws = await factory.api_workspace()
    anna, omar = (await factory.api_member(ws, Role.AGENT),
                  await factory.api_member(ws, Role.AGENT))
    return ws, anna, omar, await factory.inbox(ws)


async def test_a_customer_message_is_unread_for_each_agent_until_that_agent_reads_it(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, anna, omar, inbox = await _setup(factory)
    cid = (await factory.incoming(ws, inbox, identifier="olga"))["conversation_id"]
    assert await _unread(api, anna, cid) and await _unread(api, omar, cid)

    state = await _read(api, anna, cid)

    assert state["conversation_id"] == cid and state["unread"] is False
    assert not await _unread(api, anna, cid)
    assert await _unread(api, omar, cid)  # Anna's reading is hers alone


async def test_a_customer_message_after_reading_makes_it_unread_again(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, anna, _, inbox = await _setup(factory)
    cid = (await factory.incoming(ws, inbox, identifier="olga"))["conversation_id"]
    await _read(api, anna, cid)

    again = await factory.incoming(ws, inbox, identifier="olga", content="Any news?")

    assert again["conversation_id"] == cid
    assert await _unread(api, anna, cid)
    assert (await _read(api, anna, cid))["last_read_message_id"] == again["message_id"]
    assert not await _unread(api, anna, cid)


async def test_an_agents_reply_or_note_marks_it_read_for_them_and_for_nobody_else(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, anna, omar, inbox = await _setup(factory)
    first = (await factory.incoming(ws, inbox, identifier="a"))["conversation_id"]
    second = (await factory.incoming(ws, inbox, identifier="b"))["conversation_id"]

    reply_id = await _reply(api, anna, first)
    await _reply(api, anna, second, private=True)

    assert not await _unread(api, anna, first) and not await _unread(api, anna, second)
    assert await _unread(api, omar, first) and await _unread(api, omar, second)
    r = await api.get(f"/api/v1/conversations/{first}", headers=anna.headers)
    assert r.json()["unread"] is False
    state = await _read(api, anna, first)
    assert state["last_read_message_id"] == reply_id


async def test_agents_own_messages_never_make_a_conversation_unread(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, anna, omar, inbox = await _setup(factory)
    cid = (await factory.incoming(ws, inbox))["conversation_id"]
    await _read(api, anna, cid)

    await _reply(api, omar, cid)  # another agent's reply, a note, an assignment
    await _reply(api, omar, cid, private=True)
    await factory.assign(ws, cid, omar)

    assert not await _unread(api, anna, cid)


async def test_only_turning_read_or_unread_is_announced_not_every_move_of_the_position(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws, anna, _, inbox = await _setup(factory)
    cid = (await factory.incoming(ws, inbox, identifier="olga"))["conversation_id"]
    await _read(api, anna, cid)  # unread -> read: announced

    reply_id = await _reply(api, anna, cid)  # read before, read after: nothing to tell
    await _reply(api, anna, cid, private=True)

    assert (await _read(api, anna, cid))["last_read_message_id"] > reply_id  # the note
    await factory.incoming(ws, inbox, identifier="olga", content="Thanks!")
    await _reply(api, anna, cid)  # unread -> read by writing: announced
    events = await _read_events(runtime, ws)
    assert [e["unread"] for e in events] == [False, False]


async def test_the_read_position_never_moves_back(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws, anna, _, inbox = await _setup(factory)
    older = await factory.incoming(ws, inbox, identifier="olga")
    newer = await factory.incoming(ws, inbox, identifier="olga", content="Hello again")
    cid = older["conversation_id"]
    assert (await _read(api, anna, cid))["last_read_message_id"] == newer["message_id"]

    state = await _read(api, anna, cid, {"up_to_message_id": older["message_id"]})
    await _read(api, anna, cid)  # and reading again is harmless

    assert state == {"conversation_id": cid, "unread": False,
                     "last_read_message_id": newer["message_id"]}
    assert len(await _read_events(runtime, ws)) == 1  # nothing changed twice: one event


async def test_reading_up_to_an_older_message_leaves_the_newer_one_unread(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, anna, _, inbox = await _setup(factory)
    older = await factory.incoming(ws, inbox, identifier="olga")
    newer = await factory.incoming(ws, inbox, identifier="olga", content="Hello again")
    cid = older["conversation_id"]

    state = await _read(api, anna, cid, {"up_to_message_id": older["message_id"]})

    assert state == {"conversation_id": cid, "unread": True,
                     "last_read_message_id": older["message_id"]}
    state = await _read(api, anna, cid, {"up_to_message_id": newer["message_id"]})
    assert state["unread"] is False


async def test_marking_unread_holds_until_the_agent_reads_it_again(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws, anna, omar, inbox = await _setup(factory)
    cid = (await factory.incoming(ws, inbox))["conversation_id"]
    await _read(api, anna, cid)
    await _read(api, omar, cid)

    state = await _mark_unread(api, anna, cid)
    await _mark_unread(api, anna, cid)  # twice: no second change

    assert state["unread"] is True and state["last_read_message_id"] is not None
    assert await _unread(api, anna, cid)
    assert not await _unread(api, omar, cid)
    assert not (await _read(api, anna, cid))["unread"]
    events = await _read_events(runtime, ws)
    assert [(e["user_id"], e["unread"]) for e in events] == [
        (anna.user_id, False), (omar.user_id, False), (anna.user_id, True),
        (anna.user_id, False)]
    assert all(e["conversation"] == {"id": cid} for e in events)


async def test_a_conversation_without_customer_messages_can_still_be_marked_unread(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, anna, _, inbox = await _setup(factory)
    original = await factory.incoming(ws, inbox, identifier="olga")
    await _reply(api, anna, original["conversation_id"])
    # Split the agent's reply off: the new conversation holds no customer message.
    messages = (await api.get(f"/api/v1/conversations/{original['conversation_id']}/messages",
                              headers=ws.admin.headers)).json()["items"]
    reply_id = next(m["id"] for m in messages if m["message_type"] == "outgoing")
    r = await api.post(f"/api/v1/conversations/{original['conversation_id']}/messages/"
                       f"{reply_id}/move", headers=ws.admin.headers, json={})
    assert r.status_code == 200, r.text
    split = r.json()["target"]["id"]
    assert not await _unread(api, anna, split)

    await _mark_unread(api, anna, split)

    assert await _unread(api, anna, split)


async def test_the_list_carries_unread_and_filters_by_it(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, anna, omar, inbox = await _setup(factory)
    read = (await factory.incoming(ws, inbox, identifier="a"))["conversation_id"]
    unread = (await factory.incoming(ws, inbox, identifier="b"))["conversation_id"]
    await _read(api, anna, read)

    r = await api.get("/api/v1/conversations", headers=anna.headers)
    assert r.status_code == 200, r.text
    assert {c["id"]: c["unread"] for c in r.json()["items"]} == {read: False, unread: True}

    async def ids(who: Member, query: str) -> list[int]:
        r = await api.get(f"/api/v1/conversations?{query}", headers=who.headers)
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    assert await ids(anna, "unread=true") == [unread]
    assert await ids(anna, "unread=false") == [read]
    assert await ids(anna, "unread=true&limit=1") == [unread]
    assert await ids(omar, "unread=true") == [unread, read]  # newest first
    assert await ids(anna, "unread=true&status=resolved") == []
    r = await api.get("/api/v1/conversations?unread=maybe", headers=anna.headers)
    assert_error(r, 422, "validation_error")


async def test_another_workspaces_conversation_is_not_found(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    _, anna, _, _ = await _setup(factory)
    other = await factory.api_workspace()
    theirs = (await factory.conversation(other))["conversation_id"]

    for action in ("read", "unread"):
        r = await api.post(f"/api/v1/conversations/{theirs}/{action}", headers=anna.headers)
        assert_error(r, 404, "not_found")
    r = await api.post(f"/api/v1/conversations/{theirs}/read", headers=anna.headers,
                       json={"up_to_message_id": 1, "user_id": other.admin.user_id})
    assert r.status_code == 422  # no smuggled fields; and nothing of theirs changed
    assert await _unread(api, other.admin, theirs)


async def test_a_merge_brings_the_other_conversations_newer_customer_message_along(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, anna, _, inbox = await _setup(factory)
    survivor = (await factory.incoming(ws, inbox, identifier="olga"))["conversation_id"]
    await factory.set_status(ws, survivor, "resolved")
    other = (await factory.incoming(ws, inbox, identifier="olga"))["conversation_id"]
    assert other != survivor
    await _read(api, anna, survivor)

    r = await api.post(f"/api/v1/conversations/{survivor}/merge", headers=ws.admin.headers,
                       json={"other_id": other})

    assert r.status_code == 200, r.text
    assert await _unread(api, anna, survivor)
    assert not await _unread(api, anna, other)  # closed, nothing left in it


async def test_the_service_answers_unread_for_a_whole_page_in_one_query(
    factory: Factory, runtime: Runtime
) -> None:
    ws, anna, _, inbox = await _setup(factory)
    ids = [(await factory.incoming(ws, inbox))["conversation_id"] for _ in range(3)]
    principal = Principal(anna.user_id, ws.id, Role.AGENT)
    async with runtime.sessions() as session:
        await reads.mark_conversation_read(session, principal, ids[0])
        await session.commit()
        assert await reads.unread_ids(session, principal, ids) == set(ids[1:])
        # Another workspace's principal sees nothing of these, read or not.
        stranger = Principal(anna.user_id, ws.id + 10_000, Role.AGENT)
        assert await reads.unread_ids(session, stranger, ids) == set()
        count = (await session.execute(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.workspace_id == ws.id, OutboxEvent.type == "conversation.read"))
        ).scalar_one()
        assert count == 1
