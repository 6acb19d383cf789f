"""Conversations through the REST API: finding them, answering, assigning, and moving
them through their states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from frontdesk.accounts.models import Role
from frontdesk.conversations.models import Conversation
from frontdesk.runtime import Runtime
from tests.apitools import assert_error, error_fields
from tests.factories import Factory, Member, Workspace


async def _ids(api: httpx.AsyncClient, who: Member, query: str = "") -> list[int]:
    r = await api.get(f"/api/v1/conversations?{query}", headers=who.headers)
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["items"]]


async def _conversation(api: httpx.AsyncClient, ws: Workspace, cid: int) -> dict[str, Any]:
    r = await api.get(f"/api/v1/conversations/{cid}", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _post(api: httpx.AsyncClient, who: Member, cid: int, action: str,
                body: dict[str, Any]) -> httpx.Response:
    return await api.post(f"/api/v1/conversations/{cid}/{action}", headers=who.headers,
                          json=body)


# --- the list -----------------------------------------------------------------------------


async def test_the_list_filters_by_status_inbox_assignee_team_tag_and_text(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    web, mail = await factory.inbox(ws), await factory.inbox(ws)
    team = await factory.team(ws, agent)
    a = (await factory.incoming(ws, web, content="My printer is on fire",
                                name="Olga Ivanova", identifier="olga"))["conversation_id"]
    b = (await factory.incoming(ws, mail, content="Refund please",
                                email="bob@example.com"))["conversation_id"]
    c = (await factory.incoming(ws, web, content="Hello", phone="+14155550123"))["conversation_id"]
    await factory.assign(ws, a, agent, team_id=team)
    await factory.set_status(ws, b, "pending")
    await factory.set_status(ws, c, "resolved")
    await factory.tag(ws, b, "Billing", "vip")
    admin = ws.admin

    assert set(await _ids(api, admin)) == {a, b, c}
    assert await _ids(api, admin, "status=pending") == [b]
    assert set(await _ids(api, admin, "status=open&status=pending")) == {a, b}
    assert await _ids(api, admin, f"inbox_id={mail}") == [b]
    assert await _ids(api, agent, "assignee=me") == [a]
    assert await _ids(api, admin, "assignee=me") == []
    assert set(await _ids(api, admin, "assignee=none")) == {b, c}
    assert await _ids(api, admin, f"assignee={agent.user_id}") == [a]
    assert await _ids(api, admin, f"team_id={team}") == [a]
    assert await _ids(api, admin, "tag=billing") == [b]
    assert await _ids(api, admin, "tag=VIP&status=pending") == [b]
    assert await _ids(api, admin, "q=ON FIRE") == [a]  # message text, any case
    assert await _ids(api, admin, "q=ivanova") == [a]  # contact name
    assert await _ids(api, admin, "q=bob@example") == [b]  # contact e-mail
    assert await _ids(api, admin, "q=4155550123") == [c]  # contact phone
    assert await _ids(api, admin, "q=%25") == []  # a literal %, not a wildcard
    assert await _ids(api, admin, f"inbox_id={web}&status=resolved") == [c]


async def test_the_subject_is_searched_too(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    r = await api.post(f"/api/v1/inboxes/{inbox}/incoming", headers=ws.admin.headers,
                       json={"external_id": "s-1", "subject": "Order #1042 is late",
                             "contact": {"identifier": "c"}, "content": "hi"})
    assert await _ids(api, ws.admin, "q=%231042") == [r.json()["conversation_id"]]


@pytest.mark.parametrize("query", [
    "status=archived", "assignee=someone", "assignee=-1", "assignee=%C2%B2",
    "assignee=99999999999999999999", "inbox_id=abc", "inbox_id=0", "team_id=-5",
    "inbox_id=9223372036854775808", "limit=0", "limit=201", "limit=100000000000000000000000",
    f"q={'x' * 201}",
])
async def test_a_bad_filter_is_refused_naming_it(
    query: str, api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    r = await api.get(f"/api/v1/conversations?{query}", headers=ws.admin.headers)
    name = query.split("=")[0]
    assert any(f.startswith(f"query.{name}") for f in error_fields(r)), r.text


async def test_newest_activity_comes_first(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    first = (await factory.incoming(ws, inbox))["conversation_id"]
    second = (await factory.incoming(ws, inbox))["conversation_id"]
    third = (await factory.incoming(ws, inbox))["conversation_id"]
    assert await _ids(api, ws.admin) == [third, second, first]
    assert (await _post(api, ws.admin, first, "messages", {"content": "on it"})).status_code == 201
    assert await _ids(api, ws.admin) == [first, third, second]


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
async def test_cursor_pages_walk_every_conversation_once_even_with_equal_times(
    limit: int, api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    made = [(await factory.incoming(ws, inbox))["conversation_id"] for _ in range(7)]
    # Three share one instant: the order must still be total.
    same = datetime(2030, 1, 1, tzinfo=UTC)
    async with runtime.sessions() as session:
        await session.execute(update(Conversation).where(Conversation.id.in_(made[2:5]))
                              .values(last_activity_at=same))
        await session.commit()
    everything = await _ids(api, ws.admin, "limit=200")
    assert sorted(everything) == sorted(made)
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/v1/conversations", params=params,
                              headers=ws.admin.headers)).json()
        assert len(page["items"]) <= limit
        seen += [c["id"] for c in page["items"]]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break
        assert pages < 20
    assert seen == everything
    assert seen[:3] == sorted(made[2:5], reverse=True)  # the future instant, newest id first


@pytest.mark.parametrize("cursor", [
    "not-base64!", "W10", "WzFd", "WyJhIiwgImIiXQ", "WyIyMDIwLTAxLTAxVDAwOjAwOjAwIiwgMV0",
    "WyIyMDIwLTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgIjEiXQ", "WzEsIDJd", "e30", "bnVsbA",
])
async def test_a_cursor_this_api_did_not_give_out_is_refused(
    cursor: str, api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    r = await api.get("/api/v1/conversations", params={"cursor": cursor},
                      headers=ws.admin.headers)
    assert_error(r, 422, "invalid_cursor")


# --- replies and notes --------------------------------------------------------------------


async def test_a_reply_is_stored_and_marks_the_first_response(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    cid = (await factory.conversation(ws))["conversation_id"]
    r = await _post(api, agent, cid, "messages", {"content": "Internal: check billing",
                                                  "private": True})
    assert r.status_code == 201, r.text
    assert r.json()["message_type"] == "note"
    assert (await _conversation(api, ws, cid))["first_response_at"] is None

    r = await _post(api, agent, cid, "messages", {"content": "We are on it"})
    assert r.status_code == 201
    reply = r.json()
    assert (reply["message_type"], reply["sender_type"], reply["sender_user_id"]) == (
        "outgoing", "user", agent.user_id)
    first_response = (await _conversation(api, ws, cid))["first_response_at"]
    assert first_response is not None

    await _post(api, agent, cid, "messages", {"content": "Any news?"})
    assert (await _conversation(api, ws, cid))["first_response_at"] == first_response
    messages = (await api.get(f"/api/v1/conversations/{cid}/messages",
                              headers=agent.headers)).json()["items"]
    assert [m["content"] for m in messages][-3:] == [
        "Internal: check billing", "We are on it", "Any news?"]


@pytest.mark.parametrize(("body", "field"), [
    ({"content": ""}, "body.content"),
    ({"content": "   "}, "body.content"),
    ({}, "body.content"),
    ({"content": "x", "private": "sometimes"}, "body.private"),
    ({"content": "x", "sender_user_id": 1}, "body.sender_user_id"),
    ({"content": "x", "message_type": "incoming"}, "body.message_type"),
])
async def test_an_invalid_reply_is_refused(
    body: dict[str, Any], field: str, api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    assert field in error_fields(await _post(api, ws.admin, cid, "messages", body))
    messages = (await api.get(f"/api/v1/conversations/{cid}/messages",
                              headers=ws.admin.headers)).json()["items"]
    assert len(messages) == 1


async def test_messages_page_oldest_first(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    for n in range(4):
        await _post(api, ws.admin, cid, "messages", {"content": f"reply {n}"})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(f"/api/v1/conversations/{cid}/messages", params=params,
                              headers=ws.admin.headers)).json()
        seen += [m["content"] for m in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen[1:] == [f"reply {n}" for n in range(4)]
    r = await api.get(f"/api/v1/conversations/{cid}/messages", params={"cursor": "x"},
                      headers=ws.admin.headers)
    assert_error(r, 422, "invalid_cursor")


async def test_messages_page_newest_first_with_order_desc(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    for n in range(4):
        await _post(api, ws.admin, cid, "messages", {"content": f"reply {n}"})
    url = f"/api/v1/conversations/{cid}/messages"
    first = (await api.get(url, params={"order": "desc", "limit": 2},
                           headers=ws.admin.headers)).json()
    assert [m["content"] for m in first["items"]] == ["reply 3", "reply 2"]
    seen = [m["content"] for m in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (await api.get(url, params={"order": "desc", "limit": 2, "cursor": cursor},
                              headers=ws.admin.headers)).json()
        seen += [m["content"] for m in page["items"]]
        cursor = page["next_cursor"]
    assert seen[:4] == [f"reply {n}" for n in (3, 2, 1, 0)] and len(seen) == 5
    # A cursor continues only the order that gave it out.
    asc_cursor = (await api.get(url, params={"limit": 2}, headers=ws.admin.headers)
                  ).json()["next_cursor"]
    r = await api.get(url, params={"order": "desc", "cursor": asc_cursor},
                      headers=ws.admin.headers)
    assert_error(r, 422, "invalid_cursor")
    r = await api.get(url, params={"cursor": first["next_cursor"]}, headers=ws.admin.headers)
    assert_error(r, 422, "invalid_cursor")


# --- assignment ---------------------------------------------------------------------------


async def test_an_agent_takes_a_conversation_only_for_themselves(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    colleague = await factory.api_member(ws, Role.AGENT)
    cid = (await factory.conversation(ws))["conversation_id"]
    assert_error(await _post(api, agent, cid, "assign", {"assignee_id": colleague.user_id}), 403)
    r = await _post(api, agent, cid, "assign", {"assignee_id": agent.user_id})
    assert r.status_code == 200 and r.json()["assignee_id"] == agent.user_id
    # the colleague can neither take it over nor drop it
    assert_error(await _post(api, colleague, cid, "assign",
                             {"assignee_id": colleague.user_id}), 403)
    assert_error(await _post(api, colleague, cid, "assign", {"assignee_id": None}), 403)
    r = await _post(api, agent, cid, "assign", {"assignee_id": None})
    assert r.status_code == 200 and r.json()["assignee_id"] is None


async def test_a_supervisor_assigns_anyone_in_the_workspace_and_any_team(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other = await factory.api_workspace(), await factory.api_workspace()
    supervisor = await factory.api_member(ws, Role.SUPERVISOR)
    agent = await factory.api_member(ws, Role.AGENT)
    team = await factory.team(ws)
    cid = (await factory.conversation(ws))["conversation_id"]
    r = await _post(api, supervisor, cid, "assign", {"assignee_id": agent.user_id,
                                                     "team_id": team})
    assert r.status_code == 200, r.text
    assert (r.json()["assignee_id"], r.json()["team_id"]) == (agent.user_id, team)
    messages = (await api.get(f"/api/v1/conversations/{cid}/messages",
                              headers=ws.admin.headers)).json()["items"]
    assert messages[-1]["message_type"] == "activity"

    outsider = other.admin
    assert_error(await _post(api, supervisor, cid, "assign",
                             {"assignee_id": outsider.user_id}), 404)
    assert_error(await _post(api, supervisor, cid, "assign",
                             {"assignee_id": agent.user_id,
                              "team_id": await factory.team(other)}), 404)
    assert_error(await _post(api, supervisor, cid, "assign", {"assignee_id": 987654321}), 404)
    after = await _conversation(api, ws, cid)
    assert (after["assignee_id"], after["team_id"]) == (agent.user_id, team)


# --- status -------------------------------------------------------------------------------


async def test_snoozing_needs_a_moment_in_the_future(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    admin = ws.admin
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    for body in ({"status": "snoozed"}, {"status": "snoozed", "snoozed_until": past},
                 {"status": "snoozed", "snoozed_until": "2030-01-01T09:00:00"},
                 {"status": "snoozed", "snoozed_until": "9999-12-31T23:59:59-23:00"},
                 {"status": "resolved", "snoozed_until": future.isoformat()}):
        assert "body.snoozed_until" in error_fields(await _post(api, admin, cid, "status", body))
    assert (await _conversation(api, ws, cid))["status"] == "open"
    r = await _post(api, admin, cid, "status", {"status": "snoozed",
                                                "snoozed_until": future.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "snoozed"
    assert datetime.fromisoformat(r.json()["snoozed_until"]) == future
    r = await _post(api, admin, cid, "status", {"status": "resolved"})
    assert (r.json()["status"], r.json()["snoozed_until"]) == ("resolved", None)
    assert "body.status" in error_fields(await _post(api, admin, cid, "status",
                                                     {"status": "deleted"}))


# --- tags and fields ----------------------------------------------------------------------


async def test_tags_are_added_normalised_and_removed(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    r = await _post(api, ws.admin, cid, "tags", {"tags": [" Billing ", "billing", "VIP"]})
    assert r.status_code == 200 and r.json()["tags"] == ["billing", "vip"]
    r = await api.delete(f"/api/v1/conversations/{cid}/tags/Billing", headers=ws.admin.headers)
    assert r.status_code == 200 and r.json()["tags"] == ["vip"]
    r = await api.delete(f"/api/v1/conversations/{cid}/tags/never", headers=ws.admin.headers)
    assert r.status_code == 200 and r.json()["tags"] == ["vip"]
    tags = (await api.get("/api/v1/tags", headers=ws.admin.headers)).json()["tags"]
    assert tags == ["billing", "vip"]
    bad: list[dict[str, Any]] = [{"tags": []}, {"tags": [""]}, {"tags": ["x" * 101]},
                                 {"tags": "vip"}]
    for body in bad:
        assert "body.tags" in error_fields(await _post(api, ws.admin, cid, "tags", body))


async def test_priority_subject_and_custom_fields_are_updated(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    cid = (await factory.conversation(ws))["conversation_id"]
    url = f"/api/v1/conversations/{cid}"
    r = await api.patch(url, headers=agent.headers,
                        json={"priority": "urgent", "subject": "Outage",
                              "custom_fields": {"order": "1042", "sku": "A-1"}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["priority"], got["subject"], got["custom_fields"]) == (
        "urgent", "Outage", {"order": "1042", "sku": "A-1"})
    r = await api.patch(url, headers=agent.headers, json={"custom_fields": {"sku": None}})
    assert r.json()["custom_fields"] == {"order": "1042"}
    for body, field in ((b'{"priority": "critical"}', "body.priority"),
                        (b'{"status": "resolved"}', "body.status"),
                        (b'{"contact_id": 1}', "body.contact_id"),
                        (b'{"custom_fields": {"x": Infinity}}', "body.custom_fields"),
                        (b'{"custom_fields": {"x": NaN}}', "body.custom_fields")):
        r = await api.patch(url, content=body, headers={**agent.headers,
                                                        "content-type": "application/json"})
        assert field in error_fields(r), body
    got = await _conversation(api, ws, cid)
    assert (got["priority"], got["status"], got["custom_fields"]) == (
        "urgent", "open", {"order": "1042"})
