"""Errors are JSON with a machine-readable code, whatever went wrong and wherever: unknown
routes and methods, ids no database could hold, bodies that are not JSON. Never a 500."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from frontdesk.accounts.models import Team
from frontdesk.contacts.models import Contact
from frontdesk.core.errors import is_data_error, is_unique_violation
from frontdesk.runtime import Runtime
from tests.apitools import ROUTES, Objects, Route, assert_error, error_fields, minimal_body
from tests.factories import Factory

INT_PATH_ROUTES = [
    r for r in ROUTES
    if any(p.field_info.annotation is int for p in r.endpoint.dependant.path_params)
]
BODY_ROUTES = [r for r in ROUTES if r.body_model is not None]
LIST_ROUTES = [r for r in ROUTES if r.method == "GET" and not r.path_params]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/nothing-here"), ("POST", "/api/v1/nothing-here"), ("GET", "/nothing"),
    ("GET", "/api/v1/conversations/1/nothing"),
])
async def test_an_unknown_route_answers_a_json_404(
    method: str, path: str, api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    assert_error(await api.request(method, path, headers=ws.admin.headers), 404, "not_found")


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/api/v1/conversations"), ("PUT", "/api/v1/contacts/1"),
    ("PATCH", "/api/v1/tags"),
])
async def test_a_method_a_route_does_not_have_answers_a_json_405(
    method: str, path: str, api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    r = await api.request(method, path, headers=ws.admin.headers)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers.get("allow")


@pytest.mark.parametrize("route", INT_PATH_ROUTES, ids=str)
async def test_an_id_no_database_can_hold_answers_404_or_422(
    route: Route, api: httpx.AsyncClient, factory: Factory
) -> None:
    owner = await Objects.create(factory)
    body = await minimal_body(route, owner)
    own = {p: await owner.get(p) for p in route.path_params}
    int_params = [p.name for p in route.endpoint.dependant.path_params
                  if p.field_info.annotation is int]
    for name in int_params:
        for bad in (2**63, 2**64 + 1, 10**30, 0, -1, "abc", "1.5", "1e3"):
            path = route.url(**{**own, name: bad})
            r = await api.request(route.method, path, headers=owner.headers, json=body)
            assert r.status_code in (404, 422), f"{route} with {name}={bad}: {r.status_code}"
            assert_error(r, r.status_code)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
async def test_a_body_that_is_not_a_json_object_answers_422(
    route: Route, api: httpx.AsyncClient, factory: Factory
) -> None:
    owner = await Objects.create(factory)
    path = await owner.path(route)
    headers = {**owner.headers, "content-type": "application/json"}
    for content in (b"", b"{", b"\xff\xfe\x00{", b'{"name": "\xff"}', b"[]", b"null", b'"x"',
                    b"1e999999", b'{"a": NaN}'):
        r = await api.request(route.method, path, headers=headers, content=content)
        assert error_fields(r), f"{route} with {content!r}"


def _text_field(route: Route) -> str | None:
    """A free-text field of the route's body, if it has one."""
    assert route.body_model is not None
    for name, prop in route.body_model.model_json_schema().get("properties", {}).items():
        options = prop.get("anyOf", [prop])
        if any(o.get("type") == "string" and not {"enum", "format", "const"} & set(o)
               for o in options):
            return str(name)
    return None


TEXT_ROUTES = [(r, f) for r in BODY_ROUTES if (f := _text_field(r))]


@pytest.mark.parametrize(("route", "field"), TEXT_ROUTES, ids=[str(r) for r, _ in TEXT_ROUTES])
async def test_text_no_database_can_store_answers_422(
    route: Route, field: str, api: httpx.AsyncClient, factory: Factory
) -> None:
    owner = await Objects.create(factory)
    path = await owner.path(route)
    body = await minimal_body(route, owner) or {}
    for bad in ("nul\u0000inside", "lone \ud800 surrogate"):
        content = json.dumps({**body, field: bad})  # ASCII: escapes \u0000 and \ud800
        r = await api.request(route.method, path, content=content,
                              headers={**owner.headers, "content-type": "application/json"})
        assert f"body.{field}" in error_fields(r), f"{route}: {field}={bad!r}"


@pytest.mark.parametrize("route", LIST_ROUTES, ids=str)
async def test_a_nul_in_the_query_string_answers_422(
    route: Route, api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    r = await api.get(f"{route.path}?q=a%00b&cursor=%00", headers=ws.admin.headers)
    assert error_fields(r) == ["query"]


async def test_a_nul_in_the_path_answers_422(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    r = await api.delete(f"/api/v1/conversations/{cid}/tags/a%00b", headers=ws.admin.headers)
    assert error_fields(r) == ["path"]


async def test_a_validation_error_names_every_bad_field_and_says_why(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    r = await api.post(f"/api/v1/inboxes/{inbox}/incoming", headers=ws.admin.headers,
                       json={"contact": {"email": "nope"}, "content": "", "extra": 1})
    error = assert_error(r, 422, "validation_error")
    fields = {d["field"]: d["message"] for d in error["details"]}
    assert set(fields) == {"body.external_id", "body.contact.email", "body.content",
                           "body.extra"}
    assert all(isinstance(m, str) and m for m in fields.values())
    assert error["message"].startswith("Invalid input: body.")


async def test_the_database_refusing_a_value_is_recognised_as_bad_input(
    runtime: Runtime,
) -> None:
    if runtime.is_sqlite:
        pytest.skip("SQLite raises OverflowError before the database sees the value")
    async with runtime.read_sessions() as session:
        with pytest.raises(DBAPIError) as raised:
            await session.execute(select(Contact).where(Contact.id == 2**63))
        await session.rollback()
        with pytest.raises(DBAPIError) as nul:
            await session.execute(select(Contact).where(Contact.name == "a\x00b"))
    assert is_data_error(raised.value)
    assert is_data_error(nul.value)


async def test_a_lost_race_for_a_unique_key_is_recognised_as_a_conflict(
    runtime: Runtime, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    async with runtime.sessions() as session:
        session.add_all([Team(workspace_id=ws.id, name="Twins"),
                         Team(workspace_id=ws.id, name="Twins")])
        with pytest.raises(DBAPIError) as raised:
            await session.flush()
        await session.rollback()
    assert is_unique_violation(raised.value)
    assert not is_data_error(raised.value)
