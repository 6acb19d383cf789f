"""Request bodies are allow-listed: a field a route does not declare (`workspace_id`, `id`,
`role`, `contact_id`...) is refused with 422 naming it, and nothing is written. No body
lets a user raise their own role or move an object to another workspace."""

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
    error_fields,
    minimal_body,
    workspace_snapshot,
)
from tests.factories import Factory

BODY_ROUTES = [r for r in ROUTES if r.body_model is not None]
SMUGGLED = ["workspace_id", "id", "role", "contact_id", "user_id", "inbox_id",
            "conversation_id", "created_at", "sender_user_id", "assignee_id", "token_hash",
            "password_hash", "is_admin"]


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
async def test_an_undeclared_field_is_refused_and_nothing_is_written(
    route: Route, api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    assert route.body_model is not None
    owner = await Objects.create(factory)
    other = await Objects.create(factory)
    path = await owner.path(route)
    body = await minimal_body(route, owner)
    assert body is not None
    declared = set(route.body_model.model_fields)
    before = await workspace_snapshot(runtime, owner.workspace.id)
    for key in [k for k in SMUGGLED if k not in declared]:
        smuggled = {**body, key: other.workspace.id if key.endswith("_id") else "admin"}
        r = await api.request(route.method, path, headers=owner.headers, json=smuggled)
        assert f"body.{key}" in error_fields(r), f"{route} took {key}"
    assert await workspace_snapshot(runtime, owner.workspace.id) == before, route
    # The same body without the smuggled field is fine: the 422s were about that field.
    r = await api.request(route.method, path, headers=owner.headers, json=body)
    assert r.status_code < 400, f"{route}: {r.status_code} {r.text[:300]}"


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
async def test_no_body_raises_an_agents_own_role(
    route: Route, api: httpx.AsyncClient, factory: Factory
) -> None:
    assert route.body_model is not None
    ws = await Objects.create(factory)
    agent = await ws.member(Role.AGENT)
    path = await ws.path(route)
    body = {**(await minimal_body(route, ws) or {}), "role": "admin"}
    if "user_id" in route.path_params:
        path = route.url(**{**{p: await ws.get(p) for p in route.path_params},
                            "user_id": agent.user_id})
    r = await api.request(route.method, path, headers=agent.headers, json=body)
    assert r.status_code in (403, 422), f"{route}: {r.status_code} {r.text[:300]}"
    me = (await api.get("/api/v1/me", headers=agent.headers)).json()
    assert me["role"] == "agent"


async def test_a_contact_cannot_be_moved_to_another_workspace(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    owner, other = await Objects.create(factory), await Objects.create(factory)
    contact_id = await owner.get("contact_id")
    r = await api.patch(f"/api/v1/contacts/{contact_id}", headers=owner.headers,
                        json={"name": "Moved", "workspace_id": other.workspace.id})
    assert error_fields(r) == ["body.workspace_id"]
    got = await api.get(f"/api/v1/contacts/{contact_id}", headers=owner.headers)
    assert got.status_code == 200 and got.json()["name"] != "Moved"
    assert_error(await api.get(f"/api/v1/contacts/{contact_id}", headers=other.headers), 404)


async def test_a_conversation_cannot_be_given_to_another_contact_or_inbox(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await Objects.create(factory)
    conversation_id = await ws.get("conversation_id")
    stranger = await ws.get("merge_id")
    url = f"/api/v1/conversations/{conversation_id}"
    before = (await api.get(url, headers=ws.headers)).json()
    for key, value in (("contact_id", stranger), ("inbox_id", 1), ("workspace_id", 1),
                       ("first_response_at", "2020-01-01T00:00:00Z")):
        r = await api.patch(url, headers=ws.headers, json={"priority": "high", key: value})
        assert error_fields(r) == [f"body.{key}"]
    assert (await api.get(url, headers=ws.headers)).json() == before


async def test_a_new_token_has_its_users_role_whatever_the_body_says(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await Objects.create(factory)
    agent = await ws.member(Role.AGENT)
    r = await api.post("/api/v1/tokens", headers=agent.headers,
                       json={"name": "mine", "role": "admin"})
    assert error_fields(r) == ["body.role"]
    _, token = await factory.token(agent)
    me = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["role"] == "agent"
    r = await api.post("/api/v1/inboxes", headers={"Authorization": f"Bearer {token}"},
                       json={"name": "x", "channel": "api"})
    assert_error(r, 403)
