"""Tenant isolation over every route: an id of another workspace answers exactly like an id
that does not exist (404), never 2xx and never 403 (which would confirm it exists); lists
never show another workspace's objects.

The routes come from the app (tests/apitools.py), so a new route is covered the day it is
added; a route whose path parameter these tests cannot fill fails until MAKERS learns it.
"""

from __future__ import annotations

import httpx
import pytest

from frontdesk.accounts.models import Role
from tests.apitools import (
    ROUTES,
    Objects,
    Route,
    assert_error,
    minimal_body,
    unknown_path_params,
)
from tests.factories import Factory

ROUTES_WITH_IDS = [r for r in ROUTES if r.path_params]
LIST_ROUTES = [r for r in ROUTES if r.method == "GET" and not r.path_params]


def test_the_walk_finds_the_routes_it_must_cover() -> None:
    paths = {str(r) for r in ROUTES_WITH_IDS}
    assert "GET /api/v1/conversations/{conversation_id}" in paths
    assert "POST /api/v1/inboxes/{inbox_id}/incoming" in paths
    assert "POST /api/v1/contacts/{contact_id}/merge" in paths
    assert len(ROUTES_WITH_IDS) >= 17


@pytest.mark.parametrize("route", ROUTES_WITH_IDS, ids=str)
async def test_an_id_of_another_workspace_answers_404(
    route: Route, api: httpx.AsyncClient, factory: Factory
) -> None:
    unknown = unknown_path_params(route)
    if unknown:
        pytest.fail(f"{route}: the tenancy test cannot make an object for {unknown}; teach "
                    "MAKERS in tests/apitools.py how to make one")
    a, b = await Objects.create(factory), await Objects.create(factory)
    path = await a.path(route)

    # B's admin, with a body that would be valid for B (its ids name B's own objects).
    r = await api.request(route.method, path, headers=b.headers,
                          json=await minimal_body(route, b))
    assert_error(r, 404)

    # The same request from A's admin goes through: B's 404 came from tenancy, not from
    # a malformed request.
    r = await api.request(route.method, path, headers=a.headers,
                          json=await minimal_body(route, a))
    assert r.status_code < 400 or r.status_code == 409, (
        f"control request as the owner: {route} answered {r.status_code}: {r.text[:300]}")


async def test_no_list_shows_anything_of_another_workspace(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    a = await (await Objects.create(factory)).everything()
    b = await Objects.create(factory)
    await b.get("conversation_id")
    leaks = []
    for route in LIST_ROUTES:
        for reader, other in ((b, a), (a, b)):
            r = await api.get(route.path, headers=reader.headers)
            assert r.status_code == 200, f"{route}: {r.status_code} {r.text[:200]}"
            if other.marker in r.text:
                leaks.append(f"{route} shows {other.marker}'s objects: {r.text[:300]}")
    assert not leaks, "\n".join(leaks)
    assert len(LIST_ROUTES) >= 10


async def test_filters_naming_another_workspaces_objects_find_nothing(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    a = await (await Objects.create(factory)).everything()
    b = await Objects.create(factory)
    await b.get("conversation_id")
    agent = await a.member(Role.AGENT)
    await factory.assign(a.workspace, await a.get("conversation_id"), agent,
                         team_id=await a.get("team_id"))
    for query in (f"inbox_id={await a.get('inbox_id')}", f"team_id={await a.get('team_id')}",
                  f"assignee={agent.user_id}", f"tag={await a.get('tag')}", f"q={a.marker}"):
        r = await api.get(f"/api/v1/conversations?{query}", headers=b.headers)
        assert r.status_code == 200, r.text
        assert r.json()["items"] == [], query
    r = await api.get(f"/api/v1/contacts?q={a.marker}", headers=b.headers)
    assert r.json()["items"] == []


async def test_intake_into_another_workspaces_inbox_stores_nothing(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    a, b = await Objects.create(factory), await Objects.create(factory)
    inbox_id = await a.get("inbox_id")
    r = await api.post(f"/api/v1/inboxes/{inbox_id}/incoming", headers=b.headers,
                       json={"external_id": "x-1", "contact": {"identifier": "intruder"},
                             "content": "let me in"})
    assert_error(r, 404)
    for headers in (a.headers, b.headers):
        listed = await api.get("/api/v1/conversations", headers=headers)
        assert "let me in" not in listed.text and "intruder" not in listed.text
        assert listed.json()["items"] == []
