"""Saved views through the REST API: personal ones are their owner's alone, shared ones are
seen by everyone and managed by supervisors and admins; filters name only the workspace's
own objects and come back as they were saved."""

from __future__ import annotations

from typing import Any

import httpx

from frontdesk.accounts.models import Role
from tests.apitools import assert_error, error_fields
from tests.factories import Factory, Member


async def _create(api: httpx.AsyncClient, who: Member, **body: Any) -> httpx.Response:
    return await api.post("/api/v1/views", headers=who.headers, json=body)


async def _names(api: httpx.AsyncClient, who: Member) -> list[str]:
    r = await api.get("/api/v1/views", headers=who.headers)
    assert r.status_code == 200, r.text
    return [v["name"] for v in r.json()["items"]]


async def test_a_personal_view_is_its_owners_alone(api: httpx.AsyncClient,
                                                   factory: Factory) -> None:
    ws = await factory.api_workspace()
    anna = await factory.api_member(ws, Role.AGENT)
    omar = await factory.api_member(ws, Role.AGENT)
    r = await _create(api, anna, name="  My   urgent ones ",
                      filters={"priority": ["urgent", "high"], "assignee": "me",
                               "status": ["open", "pending"], "sort": "waiting"})
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["name"] == "My urgent ones"
    assert view["shared"] is False and view["owner_id"] == anna.user_id
    assert view["filters"] == {"status": ["open", "pending"], "inbox_id": None,
                               "channel": None, "team_id": None, "tag": None,
                               "priority": ["urgent", "high"], "assignee": "me", "q": None,
                               "automatic": None, "sort": "waiting"}
    assert await _names(api, anna) == ["My urgent ones"]
    assert await _names(api, omar) == []
    # Not even the admin sees it: it is someone's own.
    assert await _names(api, ws.admin) == []
    for method, body in (("GET", None), ("PATCH", {"name": "mine now"}), ("DELETE", None)):
        r = await api.request(method, f"/api/v1/views/{view['id']}", headers=omar.headers,
                              json=body)
        assert_error(r, 404)
    r = await api.patch(f"/api/v1/views/{view['id']}", headers=anna.headers,
                        json={"name": "Urgent", "filters": {"tag": " VIP "}})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Urgent"
    assert r.json()["filters"]["tag"] == "vip" and r.json()["filters"]["priority"] == []
    r = await api.delete(f"/api/v1/views/{view['id']}", headers=anna.headers)
    assert r.status_code == 204
    assert await _names(api, anna) == []


async def test_shared_views_are_for_everyone_and_managed_by_supervisors(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    supervisor = await factory.api_member(ws, Role.SUPERVISOR)
    assert_error(await _create(api, agent, name="Everyone's", shared=True), 403)
    r = await _create(api, supervisor, name="Unassigned urgent", shared=True,
                      filters={"assignee": "none", "priority": ["urgent"]})
    assert r.status_code == 201, r.text
    shared = r.json()
    r = await _create(api, agent, name="Anna's")
    assert r.status_code == 201
    personal = r.json()
    # Shared ones first, then one's own.
    assert await _names(api, agent) == ["Unassigned urgent", "Anna's"]
    assert await _names(api, ws.admin) == ["Unassigned urgent"]
    url = f"/api/v1/views/{shared['id']}"
    assert (await api.get(url, headers=agent.headers)).status_code == 200
    assert_error(await api.patch(url, headers=agent.headers, json={"name": "mine"}), 403)
    assert_error(await api.delete(url, headers=agent.headers), 403)
    # An agent cannot share their own view either.
    r = await api.patch(f"/api/v1/views/{personal['id']}", headers=agent.headers,
                        json={"shared": True})
    assert_error(r, 403)
    r = await api.patch(url, headers=ws.admin.headers, json={"name": "Urgent, nobody's"})
    assert r.status_code == 200 and r.json()["name"] == "Urgent, nobody's"
    assert (await api.delete(url, headers=supervisor.headers)).status_code == 204
    assert await _names(api, agent) == ["Anna's"]


async def test_filters_name_only_the_workspaces_own_objects(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    mine, theirs = await factory.api_workspace(), await factory.api_workspace()
    their_inbox = await factory.inbox(theirs)
    their_team = await factory.team(theirs)
    for filters in ({"inbox_id": their_inbox}, {"team_id": their_team},
                    {"assignee": str(theirs.admin.user_id)}):
        assert_error(await _create(api, mine.admin, name="x", filters=filters), 404)
    assert await _names(api, mine.admin) == []
    my_inbox = await factory.inbox(mine)
    r = await _create(api, mine.admin, name="Shop", filters={"inbox_id": my_inbox})
    assert r.status_code == 201
    r = await api.patch(f"/api/v1/views/{r.json()['id']}", headers=mine.admin.headers,
                        json={"filters": {"inbox_id": their_inbox}})
    assert_error(r, 404)


async def test_view_bodies_are_checked(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "   "}, "body.name"),
        ({"name": "x" * 101}, "body.name"),
        ({"name": "x", "filters": {"sort": "sideways"}}, "body.filters.sort"),
        ({"name": "x", "filters": {"assignee": "someone"}}, "body.filters.assignee"),
        ({"name": "x", "filters": {"priority": ["meh"]}}, "body.filters.priority.0"),
        ({"name": "x", "filters": {"workspace_id": 1}}, "body.filters.workspace_id"),
        ({"name": "x", "owner_id": 1}, "body.owner_id"),
    ]
    for body, field in cases:
        assert field in error_fields(await _create(api, ws.admin, **body)), body
    assert await _names(api, ws.admin) == []
