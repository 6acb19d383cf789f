"""Test set-up shared by the whole suite.

Every test that takes `backend` (directly or through `api`) runs twice: on SQLite and on
the local PostgreSQL (127.0.0.1:5432, database per run). Tests don't clean up between
each other: each makes its own workspaces with the factories, and tenancy keeps them apart
(which the suite also proves).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from frontdesk.app import create_app
from frontdesk.config import Settings
from frontdesk.db.migrate import upgrade
from frontdesk.runtime import Runtime
from tests.dovecot import dovecot  # noqa: F401 - the private IMAP server, a session fixture
from tests.factories import Factory

PG_ADMIN_DSN = os.environ.get("FRONTDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
# No SMTP server on the default port in tests (several runs share the machine); the e-mail
# tests start theirs on a free port.
os.environ.setdefault("FRONTDESK_SMTP_PORT", "0")


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An SQLAlchemy URL of a freshly migrated database of each backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "frontdesk.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade(url)
        yield url
        return
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_DSN}")
        pytest.skip("PostgreSQL is not reachable")
    name = f"frontdesk_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    url = f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(database_url=backend, webhooks_allow_private=True,
                    imap_allow_private=True, push_allow_private=True,
                    data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
async def app_and_client(settings: Settings) -> AsyncIterator[tuple[object, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        base_url = "http://frontdesk.test"
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield app, client


@pytest.fixture
def api(app_and_client: tuple[object, httpx.AsyncClient]) -> httpx.AsyncClient:
    """An HTTP client talking to the app in-process (no token set: use factory headers)."""
    return app_and_client[1]


@pytest.fixture
def runtime(app_and_client: tuple[object, httpx.AsyncClient]) -> Runtime:
    app = app_and_client[0]
    return app.state.runtime  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def factory(api: httpx.AsyncClient, runtime: Runtime) -> Factory:
    return Factory(api, runtime)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
