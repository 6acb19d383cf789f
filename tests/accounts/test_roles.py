"""Roles: agents answer customers; supervisors also merge contacts and keep companies;
admins also run the workspace (inboxes, teams, members, roles, webhooks). A refusal is a
JSON 403 and changes nothing."""

from __future__ import annotations

import httpx
import pytest

from frontdesk.accounts.models import Role
from frontdesk.runtime import Runtime
from tests.apitools import (
    ROUTES,
    Objects,
    Route,
    assert_error,
    minimal_body,
    workspace_snapshot,
)
from tests.factories import Factory

ADMIN_ONLY = {
    "POST /api/v1/inboxes",
    "PATCH /api/v1/inboxes/{inbox_id}",
    "POST /api/v1/teams",
    "POST /api/v1/teams/{team_id}/members",
    "POST /api/v1/users",
    "POST /api/v1/users/{user_id}/role",
    "DELETE /api/v1/users/{user_id}",
    "PATCH /api/v1/teams/{team_id}",
    "DELETE /api/v1/teams/{team_id}/members/{user_id}",
    "PATCH /api/v1/tags/{tag}",
    "DELETE /api/v1/tags/{tag}",
}
SUPERVISOR_ONLY = {
    "POST /api/v1/contacts/{contact_id}/merge",
    "POST /api/v1/companies",
}


def _admin_routes() -> list[Route]:
    webhooks = [r for r in ROUTES if r.path.startswith("/api/v1/webhooks")]
    found = [r for r in ROUTES if str(r) in ADMIN_ONLY] + webhooks
    assert len(found) >= len(ADMIN_ONLY), "an admin route was renamed: update ADMIN_ONLY"
    return found


@pytest.mark.parametrize("route", _admin_routes(), ids=str)
async def test_only_an_admin_may(
    route: Route, api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await Objects.create(factory)
    path = await ws.path(route)
    body = await minimal_body(route, ws)
    members = [await ws.member(Role.AGENT), await ws.member(Role.SUPERVISOR)]
    before = await workspace_snapshot(runtime, ws.workspace.id)
    for member in members:
        r = await api.request(route.method, path, headers=member.headers, json=body)
        assert_error(r, 403, "forbidden")
    assert await workspace_snapshot(runtime, ws.workspace.id) == before


@pytest.mark.parametrize("route", [r for r in ROUTES if str(r) in SUPERVISOR_ONLY], ids=str)
async def test_an_agent_may_not(
    route: Route, api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await Objects.create(factory)
    path = await ws.path(route)
    body = await minimal_body(route, ws)
    agent = await ws.member(Role.AGENT)
    before = await workspace_snapshot(runtime, ws.workspace.id)
    assert_error(await api.request(route.method, path, headers=agent.headers, json=body), 403)
    assert await workspace_snapshot(runtime, ws.workspace.id) == before
    supervisor = await ws.member(Role.SUPERVISOR)
    r = await api.request(route.method, path, headers=supervisor.headers, json=body)
    assert r.status_code in (200, 201), r.text


async def test_an_admin_cannot_lower_their_own_role(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    r = await api.post(f"/api/v1/users/{ws.admin.user_id}/role", headers=ws.admin.headers,
                       json={"role": "agent"})
    assert_error(r, 409)
    assert (await api.get("/api/v1/me", headers=ws.admin.headers)).json()["role"] == "admin"


async def test_an_agent_sees_and_revokes_only_their_own_tokens(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    admin_token_id, _ = await factory.token(ws.admin)
    listed = (await api.get("/api/v1/tokens", headers=agent.headers)).json()
    assert {t["user_id"] for t in listed} == {agent.user_id}
    assert_error(await api.delete(f"/api/v1/tokens/{admin_token_id}", headers=agent.headers), 404)
    everyone = (await api.get("/api/v1/tokens", headers=ws.admin.headers)).json()
    assert {agent.user_id, ws.admin.user_id} <= {t["user_id"] for t in everyone}
    agent_token = next(t["id"] for t in everyone if t["user_id"] == agent.user_id)
    r = await api.delete(f"/api/v1/tokens/{agent_token}", headers=ws.admin.headers)
    assert r.status_code == 200
    assert_error(await api.get("/api/v1/me", headers=agent.headers), 401)
