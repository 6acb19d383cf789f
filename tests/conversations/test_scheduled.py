"""Scheduled replies: stored, listed, edited and cancelled until sent; sent when due through
the same path as a reply (message, event), once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select

from frontdesk.accounts.models import Membership, Role
from frontdesk.conversations.scheduling import send_due_replies
from frontdesk.core.events import OutboxEvent
from frontdesk.runtime import Runtime
from tests.apitools import assert_error, error_fields
from tests.factories import Factory, Member, Workspace, unique


def _later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


async def _schedule(api: httpx.AsyncClient, who: Member, cid: int, content: str,
                    send_at: datetime | str) -> httpx.Response:
    at = send_at if isinstance(send_at, str) else send_at.isoformat()
    return await api.post(f"/api/v1/conversations/{cid}/scheduled-messages",
                          headers=who.headers, json={"content": content, "send_at": at})


async def _send_due(runtime: Runtime, now: datetime) -> set[int]:
    """Everything due at `now`, in as many batches as it takes (other tests' replies may
    be due by then too: the database is shared)."""
    handled: set[int] = set()
    while batch := await send_due_replies(runtime.sessions, now=now):
        handled.update(batch)
    return handled


async def _listed(api: httpx.AsyncClient, ws: Workspace, cid: int) -> list[dict[str, Any]]:
    r = await api.get(f"/api/v1/conversations/{cid}/scheduled-messages",
                      headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _thread(api: httpx.AsyncClient, ws: Workspace, cid: int) -> list[dict[str, Any]]:
    r = await api.get(f"/api/v1/conversations/{cid}/messages", headers=ws.admin.headers)
    return list(r.json()["items"])


async def test_a_reply_is_stored_listed_edited_and_then_sent_once_when_due(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    cid = (await factory.conversation(ws))["conversation_id"]
    text = unique("we will call you tomorrow")
    r = await _schedule(api, agent, cid, "draft", _later(hours=3))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["status"] == "scheduled" and r.json()["author_user_id"] == agent.user_id

    r = await api.patch(f"/api/v1/conversations/{cid}/scheduled-messages/{sid}",
                        headers=agent.headers,
                        json={"content": text, "send_at": "2099-01-02T09:00:00+03:00"})
    assert r.status_code == 200, r.text
    assert r.json()["send_at"].startswith("2099-01-02T06:00:00")  # stored in UTC
    assert [m["content"] for m in await _listed(api, ws, cid)] == [text]

    # Not due yet: nothing happens.
    assert sid not in await _send_due(runtime, _later(days=1))
    assert text not in [m["content"] for m in await _thread(api, ws, cid)]

    sent = await _send_due(runtime, datetime(2099, 1, 2, 6, 0, 1, tzinfo=UTC))
    assert sid in sent
    reply = [m for m in await _thread(api, ws, cid) if m["content"] == text]
    assert len(reply) == 1
    assert reply[0]["message_type"] == "outgoing"
    assert reply[0]["sender_user_id"] == agent.user_id
    row = (await _listed(api, ws, cid))[0]
    assert row["status"] == "sent" and row["message_id"] == reply[0]["id"]
    async with runtime.read_sessions() as session:
        created = (await session.execute(
            select(OutboxEvent.payload).where(OutboxEvent.workspace_id == ws.id,
                                              OutboxEvent.type == "message.created")
        )).scalars().all()
    assert [e["message"]["id"] for e in created if e["message"]["content"] == text] == [
        reply[0]["id"]]

    # Sent is final: a second pass sends nothing, and it can no longer change.
    assert sid not in await _send_due(runtime, datetime(2100, 1, 1, tzinfo=UTC))
    assert len([m for m in await _thread(api, ws, cid) if m["content"] == text]) == 1
    r = await api.delete(f"/api/v1/conversations/{cid}/scheduled-messages/{sid}",
                         headers=agent.headers)
    assert_error(r, 409, "scheduled_message_sent")


async def test_a_cancelled_reply_is_never_sent(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    r = await _schedule(api, ws.admin, cid, "never", "2099-03-01T00:00:00Z")
    sid = r.json()["id"]
    r = await api.delete(f"/api/v1/conversations/{cid}/scheduled-messages/{sid}",
                         headers=ws.admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert sid not in await _send_due(runtime, datetime(2099, 3, 2, tzinfo=UTC))
    assert "never" not in [m["content"] for m in await _thread(api, ws, cid)]
    r = await api.patch(f"/api/v1/conversations/{cid}/scheduled-messages/{sid}",
                        headers=ws.admin.headers, json={"content": "after all"})
    assert_error(r, 409, "scheduled_message_cancelled")


async def test_only_future_times_with_a_zone_are_taken(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    assert_error(await _schedule(api, ws.admin, cid, "late", _later(minutes=-1)), 422,
                 "send_at_in_past")
    r = await _schedule(api, ws.admin, cid, "naive", "2099-01-01T09:00:00")
    assert error_fields(r) == ["body.send_at"]
    r = await _schedule(api, ws.admin, cid, "   ", _later(hours=1))
    assert error_fields(r) == ["body.content"]
    assert await _listed(api, ws, cid) == []


async def test_an_agent_changes_only_their_own_and_a_supervisor_anyones(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    anna, omar = (await factory.api_member(ws, Role.AGENT),
                  await factory.api_member(ws, Role.AGENT))
    boss = await factory.api_member(ws, Role.SUPERVISOR)
    cid = (await factory.conversation(ws))["conversation_id"]
    sid = (await _schedule(api, anna, cid, "anna's", _later(hours=2))).json()["id"]
    url = f"/api/v1/conversations/{cid}/scheduled-messages/{sid}"
    assert_error(await api.patch(url, headers=omar.headers, json={"content": "mine"}), 403)
    assert_error(await api.delete(url, headers=omar.headers), 403)
    r = await api.patch(url, headers=boss.headers, json={"content": "fixed by the boss"})
    assert r.status_code == 200, r.text


async def test_another_workspace_sees_nothing_and_changes_nothing(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other = await factory.api_workspace(), await factory.api_workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    own_cid = (await factory.conversation(other))["conversation_id"]
    sid = (await _schedule(api, ws.admin, cid, "private", _later(hours=2))).json()["id"]
    assert_error(await _schedule(api, other.admin, cid, "intrude", _later(hours=2)), 404)
    # The right row id under the intruder's own conversation is no better.
    url = f"/api/v1/conversations/{own_cid}/scheduled-messages/{sid}"
    assert_error(await api.delete(url, headers=other.admin.headers), 404)
    assert [m["status"] for m in await _listed(api, ws, cid)] == ["scheduled"]


async def test_a_reply_whose_author_left_fails_with_the_reason_and_others_still_go(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    leaver, stayer = (await factory.api_member(ws, Role.AGENT),
                      await factory.api_member(ws, Role.AGENT))
    cid = (await factory.conversation(ws))["conversation_id"]
    due = datetime(2098, 5, 5, 12, 0, tzinfo=UTC)
    gone = (await _schedule(api, leaver, cid, "from the leaver", due)).json()["id"]
    kept = (await _schedule(api, stayer, cid, "from the stayer", due)).json()["id"]
    async with runtime.sessions() as session:  # the membership ends, as on removal
        await session.execute(delete(Membership).where(Membership.workspace_id == ws.id,
                                                       Membership.user_id == leaver.user_id))
        await session.commit()

    handled = await _send_due(runtime, due + timedelta(seconds=1))
    assert {gone, kept} <= set(handled)
    by_id = {m["id"]: m for m in await _listed(api, ws, cid)}
    assert by_id[gone]["status"] == "failed" and "not found" in by_id[gone]["error"]
    assert by_id[kept]["status"] == "sent"
    texts = [m["content"] for m in await _thread(api, ws, cid)]
    assert "from the stayer" in texts and "from the leaver" not in texts


async def test_a_merge_takes_the_pending_replies_along(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    who = unique("cust")
    a = (await factory.incoming(ws, await factory.inbox(ws), identifier=who))["conversation_id"]
    b = (await factory.incoming(ws, await factory.inbox(ws), identifier=who))["conversation_id"]
    sid = (await _schedule(api, ws.admin, b, "follow-up", _later(hours=5))).json()["id"]
    r = await api.post(f"/api/v1/conversations/{a}/merge", headers=ws.admin.headers,
                       json={"other_id": b})
    assert r.status_code == 200, r.text
    assert [m["id"] for m in await _listed(api, ws, a)] == [sid]
    assert await _listed(api, ws, b) == []
    assert_error(await _schedule(api, ws.admin, b, "here?", _later(hours=1)), 409,
                 "already_merged")


async def test_a_scheduled_reply_going_out_does_not_mark_the_conversation_read_for_its_author(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    inbox = await factory.inbox(ws)
    who = unique("cust")
    cid = (await factory.incoming(ws, inbox, identifier=who))["conversation_id"]
    r = await api.post(f"/api/v1/conversations/{cid}/read", headers=agent.headers)
    assert r.status_code == 200 and r.json()["unread"] is False
    due = datetime(2099, 5, 1, 9, 0, tzinfo=UTC)
    r = await _schedule(api, agent, cid, "Following up as promised", due)
    assert r.status_code == 201, r.text
    # The customer writes after the agent last looked, before the reply goes out.
    await factory.incoming(ws, inbox, identifier=who, content="Never mind, one more thing")

    assert r.json()["id"] in await _send_due(runtime, due + timedelta(seconds=1))

    r = await api.get(f"/api/v1/conversations/{cid}", headers=agent.headers)
    assert r.json()["unread"] is True  # the agent has not seen the customer's new message
