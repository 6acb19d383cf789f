"""Schemathesis over /api/openapi.json, as two workspaces.

Workspace A is made first on a fresh database, so its objects have the small ids a fuzzer
tries first; then every operation of the document is fuzzed (valid and invalid inputs) as
workspace B's admin, and each case is also replayed with A's ids in its path. It must never
answer 5xx, never answer 2xx on an id of A's, never show any of A's objects (their names all
carry A's marker), and its answers must match the document. A's rows are the same after.

Bounded: a few derandomized examples per operation and mode, no shrinking; a run takes
seconds per backend, so it runs on SQLite and PostgreSQL both.
"""

from __future__ import annotations

import tempfile
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
import schemathesis.python.asgi
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case as AnyCase
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from frontdesk.app import create_app
from frontdesk.config import Settings
from frontdesk.db.migrate import upgrade
from frontdesk.runtime import Runtime
from tests.apitools import MAKERS, Objects, Snapshot, has_webhooks, workspace_snapshot
from tests.conftest import PG_ADMIN_DSN
from tests.factories import Factory

EXAMPLES_PER_OPERATION = 5
Case = AnyCase[Any]
# Listings that say which objects each workspace owns, by path parameter.
OWNED: dict[str, str] = {
    "conversation_id": "/api/v1/conversations?limit=200",
    "contact_id": "/api/v1/contacts?limit=200",
    "inbox_id": "/api/v1/inboxes",
    "team_id": "/api/v1/teams",
    "company_id": "/api/v1/companies",
    "user_id": "/api/v1/users",
    "token_id": "/api/v1/tokens",
    "webhook_id": "/api/v1/webhooks",
}


@dataclass
class Tenants:
    settings: Settings
    a_marker: str
    a_workspace_id: int
    b_token: str
    b_token_id: int
    a_ids: dict[str, set[Any]] = field(default_factory=dict)
    b_ids: dict[str, set[Any]] = field(default_factory=dict)
    a_rows: Snapshot = field(default_factory=dict)


@pytest.fixture
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
        upgrade(url)
        yield url
        return
    name = f"frontdesk_fuzz_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = backend.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _owned(api: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, set[Any]]:
    owned: dict[str, set[Any]] = {}
    for param, url in OWNED.items():
        r = await api.get(url, headers=headers)
        if r.status_code == 404 and "webhooks" in url:
            continue
        assert r.status_code == 200, f"{url}: {r.text}"
        body = r.json()
        items = body["items"] if isinstance(body, dict) else body
        owned[param] = {item["id"] for item in items}
    owned["assignee_id"] = owned["user_id"]
    owned["merge_id"] = owned["contact_id"]
    owned["delivery_id"] = set()
    for webhook_id in owned.get("webhook_id", ()):
        r = await api.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=headers)
        owned["delivery_id"] |= {d["id"] for d in r.json()["items"]}
    return owned


@pytest.fixture
async def tenants(fresh_database: str, tmp_path: Path) -> AsyncIterator[Tenants]:
    """A with objects of every kind (made first: small ids), then B with a few."""
    settings = Settings(database_url=fresh_database, webhooks_allow_private=True,
                        push_allow_private=True, embedded_worker=False,
                        data_dir=tmp_path / "data")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fuzz.test") as api:
            factory = Factory(api, app.state.runtime)
            a = await Objects.create(factory)
            for _ in range(2):  # several of each, all with ids a fuzzer reaches early
                a.made.clear()
                for kind in MAKERS:
                    if kind in ("webhook_id", "delivery_id") and not has_webhooks():
                        continue
                    if kind != "delivery_id":  # made below, without waiting
                        await a.get(kind)
            while await app.state.runtime.dispatcher.dispatch_once():
                pass  # A's events become deliveries of A's webhooks (sent by nobody)
            b = await Objects.create(factory)
            await b.get("conversation_id")
            await b.get("merge_id")
            b_token_id, b_token = await factory.token(b.workspace.admin, name="fuzzer")
            state = Tenants(settings, a.marker, a.workspace.id, b_token, b_token_id,
                            a_ids=await _owned(api, a.headers),
                            b_ids=await _owned(api, b.headers),
                            a_rows=await workspace_snapshot(app.state.runtime, a.workspace.id))
    webhooks = ["webhook_id", "delivery_id"] if has_webhooks() else []
    for kind in [k for k in OWNED if k != "webhook_id"] + webhooks:
        assert state.a_ids.get(kind), f"workspace A has no {kind} for the fuzzer to aim at"
    yield state
    runtime = Runtime(settings)  # A's rows after the fuzzing, read afresh
    try:
        after = await workspace_snapshot(runtime, state.a_workspace_id)
    finally:
        await runtime.stop()
    assert after == state.a_rows, "fuzzing as workspace B changed workspace A's rows"


def _check_isolation(tenants: Tenants, case: Case, status: int, text: str) -> None:
    where = f"{case.method} {case.formatted_path}"
    assert status < 500, f"{where} answered {status}: {text[:500]}"
    if 200 <= status < 300:
        assert tenants.a_marker not in text, f"{where} showed workspace A's objects: {text[:500]}"
        for name, value in (case.path_parameters or {}).items():
            mine = tenants.b_ids.get(name, set())
            theirs = tenants.a_ids.get(name, set())
            assert not (value in theirs and value not in mine), (
                f"{where} answered {status} on {name}={value} of workspace A")


def _with_a_ids(tenants: Tenants, case: Case) -> Case | None:
    """The same case aimed at workspace A's objects, if its path names any."""
    params = dict(case.path_parameters or {})
    swapped = False
    for name in params:
        theirs = sorted(tenants.a_ids.get(name, ()), key=str)
        if theirs:
            params[name] = theirs[zlib.crc32(repr(case.body).encode()) % len(theirs)]
            swapped = True
    if not swapped:
        return None
    return case.operation.Case(  # type: ignore[no-any-return]
        method=case.method, path_parameters=params, query=case.query, headers=case.headers,
        body=case.body, media_type=case.media_type,
    )


def _fuzz(app: FastAPI, tenants: Tenants) -> list[str]:
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    auth = {"Authorization": f"Bearer {tenants.b_token}"}
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    run = settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
                   database=None, phases=[Phase.explicit, Phase.generate],
                   suppress_health_check=list(HealthCheck))
    failures: list[str] = []
    calls: list[tuple[str, int]] = []

    def call(case: Case, validate: bool) -> None:
        if (case.method == "DELETE" and case.path_parameters
                and case.path_parameters.get("token_id") == tenants.b_token_id):
            return  # the fuzzer's own token: revoking it would end the run
        response = case.call(headers=auth)
        calls.append((f"{case.method} {case.path}", response.status_code))
        _check_isolation(tenants, case, response.status_code, response.text)
        if validate:
            case.validate_response(response, checks=checks, headers=auth)

    def fuzzer(operation: Any, mode: GenerationMode) -> Any:
        @run
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: Case) -> None:
            call(case, validate=mode is GenerationMode.POSITIVE)
            aimed = _with_a_ids(tenants, case)
            if aimed is not None:
                call(aimed, validate=False)

        return fuzz

    labels = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"an operation the document cannot describe: {result.err()}")
            continue
        operation = result.ok()
        labels.append(operation.label)
        has_inputs = any(True for _ in operation.iter_parameters()) or operation.body
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not has_inputs:
                continue
            try:
                fuzzer(operation, mode)()
            except Exception as exc:  # collect every operation's failure, not just the first
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    # It did reach the handlers: many calls, and B's own valid requests went through.
    assert len(labels) >= 30, labels
    assert len(calls) >= 10 * len(labels), len(calls)
    assert sum(200 <= status < 300 for _, status in calls) >= 20, Counter(s for _, s in calls)
    return failures


def test_fuzzing_the_api_as_another_workspace_finds_no_error_and_no_leak(
    tenants: Tenants,
) -> None:
    app = create_app(tenants.settings)
    try:
        failures = _fuzz(app, tenants)
    finally:
        schemathesis.python.asgi.shutdown_lifespans()
    assert not failures, "\n\n".join(failures)


def test_the_openapi_document_describes_the_error_shape() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        doc = create_app(Settings(data_dir=Path(scratch))).openapi()
    responses = doc["paths"]["/api/v1/conversations/{conversation_id}"]["get"]["responses"]
    for status in ("401", "404", "422"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorOut"}
    parameter = doc["paths"]["/api/v1/conversations/{conversation_id}"]["get"]["parameters"][0]
    assert parameter["schema"]["maximum"] == 2**63 - 1
    assert parameter["schema"]["minimum"] == 1
