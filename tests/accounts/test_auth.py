"""Authentication: every route wants a live token; a token acts with its user's current
role in its one workspace."""

from __future__ import annotations

import httpx
import pytest

from frontdesk.accounts.models import Role
from tests.apitools import ROUTES, Route, assert_error
from tests.factories import Factory


def _any_path(route: Route) -> str:
    return route.url(**{p: 1 for p in route.path_params})


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_every_route_without_a_live_token_answers_401(
    route: Route, api: httpx.AsyncClient
) -> None:
    assert_error(await api.request(route.method, _any_path(route)), 401, "unauthorized")
    r = await api.request(route.method, _any_path(route),
                          headers={"Authorization": "Bearer fd_not-a-token"})
    assert_error(r, 401, "unauthorized")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "fd_abc", ""])
async def test_a_malformed_authorization_header_answers_401(
    header: str, api: httpx.AsyncClient
) -> None:
    r = await api.get("/api/v1/conversations", headers={"Authorization": header})
    assert_error(r, 401)


async def test_a_revoked_token_answers_401_at_once(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    token_id, token = await factory.token(ws.admin)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/v1/me", headers=headers)).status_code == 200
    r = await api.delete(f"/api/v1/tokens/{token_id}", headers=headers)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert_error(await api.get("/api/v1/me", headers=headers), 401)
    assert_error(await api.get("/api/v1/conversations", headers=headers), 401)
    assert (await api.get("/api/v1/me", headers=ws.admin.headers)).status_code == 200


async def test_a_token_acts_with_its_users_current_role(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    body = {"name": "Support", "channel": "api"}
    assert_error(await api.post("/api/v1/inboxes", headers=agent.headers, json=body), 403)
    r = await api.post(f"/api/v1/users/{agent.user_id}/role", headers=ws.admin.headers,
                       json={"role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    assert (await api.post("/api/v1/inboxes", headers=agent.headers, json=body)).status_code == 201
    assert (await api.get("/api/v1/me", headers=agent.headers)).json()["role"] == "admin"


async def test_a_token_of_one_workspace_acts_only_in_that_workspace(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    a, b = await factory.api_workspace(), await factory.api_workspace()
    inbox_a = await factory.inbox(a)
    r = await api.get("/api/v1/inboxes", headers=b.admin.headers)
    assert inbox_a not in [i["id"] for i in r.json()]
    me = (await api.get("/api/v1/me", headers=b.admin.headers)).json()
    assert me["id"] == b.admin.user_id and me["role"] == "admin"
