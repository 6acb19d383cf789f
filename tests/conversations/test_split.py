"""Moving messages to another conversation of the same customer, or splitting them off into
a new one (POST /conversations/{id}/messages/{message_id}/move)."""

from __future__ import annotations

from typing import Any

import httpx

from frontdesk.accounts.models import Role
from tests.apitools import assert_error
from tests.factories import Factory, Workspace, unique


async def _thread(factory: Factory, ws: Workspace, *texts: str) -> tuple[int, list[int], str]:
    """One conversation holding the customer's `texts`: (its id, the message ids, who)."""
    who = unique("cust")
    inbox = await factory.inbox(ws)
    ids = [await factory.incoming(ws, inbox, content=t, identifier=who) for t in texts]
    assert len({i["conversation_id"] for i in ids}) == 1
    return ids[0]["conversation_id"], [i["message_id"] for i in ids], who


async def _texts(api: httpx.AsyncClient, ws: Workspace, cid: int) -> list[str]:
    r = await api.get(f"/api/v1/conversations/{cid}/messages", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return [m["content"] for m in r.json()["items"]]


async def _move(api: httpx.AsyncClient, ws: Workspace, cid: int, mid: int,
                **body: Any) -> httpx.Response:
    return await api.post(f"/api/v1/conversations/{cid}/messages/{mid}/move",
                          headers=ws.admin.headers, json=body)


async def test_a_split_takes_the_message_and_the_later_ones_into_a_new_conversation(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    cid, mids, _ = await _thread(factory, ws, "order 1 broke", "also: new question",
                                 "and more on that")
    agent = await factory.api_member(ws, Role.AGENT)
    await factory.assign(ws, cid, agent)

    r = await _move(api, ws, cid, mids[1], with_following=True)
    assert r.status_code == 200, r.text
    body = r.json()
    new = body["target"]
    assert body["moved_message_ids"] == mids[1:]
    assert new["id"] != cid and new["contact_id"] == body["source"]["contact_id"]
    assert new["status"] == "open" and new["assignee_id"] == agent.user_id

    assert await _texts(api, ws, new["id"]) == ["also: new question", "and more on that",
                                                 f"Split from #{cid}"]
    source = await _texts(api, ws, cid)
    assert source[0] == "order 1 broke" and source[-1] == f"Split into #{new['id']}"
    assert "also: new question" not in source


async def test_one_message_moves_into_an_existing_conversation_of_the_contact(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    cid, mids, who = await _thread(factory, ws, "about order 1", "about order 2", "order 1 again")
    other = (await factory.incoming(ws, await factory.inbox(ws), content="order 2 thread",
                                    identifier=who))["conversation_id"]

    r = await _move(api, ws, cid, mids[1], target_conversation_id=other)
    assert r.status_code == 200, r.text
    assert r.json()["moved_message_ids"] == [mids[1]]
    # In time order: the moved message was written before this thread began.
    assert await _texts(api, ws, other) == ["about order 2", "order 2 thread",
                                             f"Moved messages here from #{cid}"]
    assert await _texts(api, ws, cid) == ["about order 1", "order 1 again",
                                           f"Moved messages to #{other}"]


async def test_moves_that_make_no_sense_are_refused_and_change_nothing(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, elsewhere = await factory.api_workspace(), await factory.api_workspace()
    cid, mids, _ = await _thread(factory, ws, "one", "two")
    stranger = (await factory.conversation(ws))["conversation_id"]
    theirs = await factory.conversation(elsewhere)

    assert_error(await _move(api, ws, cid, mids[0], with_following=True), 409, "nothing_left")
    assert_error(await _move(api, ws, cid, mids[1], target_conversation_id=stranger), 409,
                 "different_contacts")
    assert_error(await _move(api, ws, cid, mids[1], target_conversation_id=cid), 422,
                 "same_conversation")
    # Another conversation's message named under this one, another workspace's anything.
    assert_error(await _move(api, ws, stranger, mids[1]), 404)
    assert_error(await _move(api, ws, cid, theirs["message_id"]), 404)
    assert_error(await _move(api, ws, cid, mids[1],
                             target_conversation_id=theirs["conversation_id"]), 404)
    assert await _texts(api, ws, cid) == ["one", "two"]
    assert await _texts(api, elsewhere, theirs["conversation_id"]) == ["Hello, I need help"]


async def test_activity_lines_stay_where_they_happened(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    cid, mids, _ = await _thread(factory, ws, "one", "two")
    await factory.set_status(ws, cid, "pending")
    r = await api.get(f"/api/v1/conversations/{cid}/messages", headers=ws.admin.headers)
    activity = r.json()["items"][-1]
    assert activity["message_type"] == "activity"
    assert_error(await _move(api, ws, cid, activity["id"]), 422, "not_movable")

    r = await _move(api, ws, cid, mids[1], with_following=True)
    assert r.status_code == 200, r.text
    assert r.json()["moved_message_ids"] == [mids[1]]  # not the status line after it
    assert "Status changed to pending" in await _texts(api, ws, cid)


async def test_an_agent_cannot_divide_another_agents_conversation(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    anna, omar = (await factory.api_member(ws, Role.AGENT),
                  await factory.api_member(ws, Role.AGENT))
    cid, mids, _ = await _thread(factory, ws, "one", "two")
    await factory.assign(ws, cid, omar)
    url = f"/api/v1/conversations/{cid}/messages/{mids[1]}/move"
    assert_error(await api.post(url, headers=anna.headers, json={}), 403, "not_yours")
    r = await api.post(url, headers=omar.headers, json={})
    assert r.status_code == 200, r.text
