"""Fixtures of the web UI tests: a real server (uvicorn in a thread, on SQLite), people with
passwords in their own workspaces, signed-in HTTP clients, and Debian's Chromium driven by
Playwright (never a downloaded browser).

The server has its own database: its embedded dispatcher must be the only one delivering
events, or a message pushed in a test could be dispatched by another process's runtime and
never reach the browser's socket.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import (
    Principal,
    add_team_member,
    create_team,
    create_token,
    create_user,
    ensure_workspace,
    hash_password,
)
from frontdesk.app import create_app
from frontdesk.channels.email.service import receive_email
from frontdesk.channels.service import create_inbox
from frontdesk.config import Settings
from frontdesk.db.migrate import upgrade
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail
from tests.factories import unique

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
PASSWORD = "Correct-Horse-9"
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WebServer:
    url: str
    app: Any
    loop: asyncio.AbstractEventLoop
    data_dir: Path

    @property
    def runtime(self) -> Runtime:
        return self.app.state.runtime  # type: ignore[no-any-return]

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the server's own loop (its engines live there)."""
        async def wrapped() -> T:
            return await make()
        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout=60)


@pytest.fixture(autouse=True, scope="package")
def _fast_password_hashing() -> Iterator[None]:
    """Argon2 with the production parameters costs ~0.7 s per hash or check on this machine,
    and these tests sign in dozens of times. They are about the UI, not the hash: cheap
    parameters here (argon2 keeps its parameters in each hash, so both kinds verify)."""
    from argon2 import PasswordHasher

    from frontdesk.accounts import service

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))
        yield


@pytest.fixture(scope="package")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    data = tmp_path_factory.mktemp("web")
    url = f"sqlite+aiosqlite:///{data / 'frontdesk.db'}"
    upgrade(url)
    app = create_app(Settings(database_url=url, data_dir=data, webhooks_allow_private=True))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ws_max_size=1 << 20))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),),
                              name="web-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield WebServer(url=f"http://127.0.0.1:{port}", app=app, loop=loop, data_dir=data)
    server.should_exit = True
    thread.join(timeout=15)


@dataclass
class Person:
    user_id: int
    email: str
    name: str
    role: Role
    token: str
    password: str = PASSWORD

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    """One workspace: an admin, two agents, an API inbox, and conversations."""

    server: WebServer
    workspace_id: int
    name: str
    admin: Person
    anna: Person
    omar: Person
    inbox_id: int
    team_id: int
    conversations: list[int] = field(default_factory=list)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers=self.admin.headers, timeout=15)

    def push(self, content: str, *, identifier: str | None = None, name: str | None = None,
             email: str | None = None) -> dict[str, Any]:
        """A customer's message through the API channel, as another system would send it."""
        contact: dict[str, Any] = {"identifier": identifier or unique("cust")}
        if name:
            contact["name"] = name
        if email:
            contact["email"] = email
        with self.api() as api:
            body = {"external_id": unique("ext"), "contact": contact, "content": content}
            r = api.post(f"/api/v1/inboxes/{self.inbox_id}/incoming", json=body)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def merged_api_and_email_conversation(self) -> dict[str, Any]:
        """Dana writes through the API channel and by e-mail (a new e-mail inbox), and the
        mail's conversation is merged into the API one: `push`'s answer for the survivor."""
        email = f"{unique('dana')}@customer.example"
        by_api = self.push("Sent from the app", identifier=unique("dana"), email=email,
                           name="Dana Mail")
        address = f"{unique('support')}@example.com"
        with self.api() as api:
            r = api.post("/api/v1/inboxes", json={"name": "Mailbox", "channel": "email",
                                                  "email": address})
            assert r.status_code == 201, r.text
        raw = make_mail(sender=f"Dana Mail <{email}>", to=address, body="Sent by mail")
        received = self.server.run(lambda: receive_email(
            self.server.runtime, raw, inbox_id=None, envelope_recipients=[address],
            source="test"))
        assert received.status == "stored" and received.conversation_id
        with self.api() as api:
            r = api.post(f"/api/v1/conversations/{by_api['conversation_id']}/merge",
                         json={"other_id": received.conversation_id})
            assert r.status_code == 200, r.text
        return by_api

    def messages(self, conversation_id: int) -> list[dict[str, Any]]:
        with self.api() as api:
            r = api.get(f"/api/v1/conversations/{conversation_id}/messages")
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def conversation(self, conversation_id: int) -> dict[str, Any]:
        with self.api() as api:
            r = api.get(f"/api/v1/conversations/{conversation_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())


@functools.cache
def _password_hash() -> str:
    # Argon2 costs most of a second here; one hash of the shared test password is enough.
    return hash_password(PASSWORD)


def make_world(server: WebServer, *, locale: str = "en", conversations: int = 3) -> World:
    name = unique("web")

    async def seed() -> tuple[int, list[Person], int, int]:
        async with server.runtime.sessions() as session:
            ws = await ensure_workspace(session, name)
            people = []
            for label, role in (("Ada Admin", Role.ADMIN), ("Anna Agent", Role.AGENT),
                                ("Omar Agent", Role.AGENT)):
                email = f"{unique(label.split()[0].lower())}@{name}.test"
                user, _ = await create_user(session, ws, email=email, role=role, name=label)
                user.password_hash = _password_hash()
                user.locale = locale
                _, token = await create_token(session, ws.id, user.id, "web-test")
                people.append(Person(user.id, email, label, role, token))
            admin = Principal(people[0].user_id, ws.id, Role.ADMIN)
            inbox = await create_inbox(session, admin, name="Website", channel="api")
            team = await create_team(session, admin, "Support")
            await add_team_member(session, admin, team.id, people[1].user_id)
            await session.commit()
            return ws.id, people, inbox.id, team.id

    ws_id, people, inbox_id, team_id = server.run(seed)
    world = World(server, ws_id, name, people[0], people[1], people[2], inbox_id, team_id)
    customers = [("Emily Carter", "My invoice was charged twice."),
                 ("Lucas Martin", "The app crashes on the settings page."),
                 ("Fatima Zahra", "I want to change my delivery address."),
                 ("Oleg Smirnov", "The SMS code never arrives."),
                 ("Wang Fang", "Where is my order?")]
    for customer, text in customers[:conversations]:
        ids = world.push(text, name=customer)
        world.conversations.append(int(ids["conversation_id"]))
    return world


@pytest.fixture
def world(web_server: WebServer) -> World:
    return make_world(web_server)


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def signed_in_client(server: WebServer, person: Person) -> tuple[httpx.Client, str]:
    """An HTTP client with a web session of `person`, and the session's CSRF token."""
    client = httpx.Client(base_url=server.url, timeout=15, follow_redirects=False)
    page = client.get("/app/login")
    token = CSRF_FIELD.search(page.text)
    assert token, page.text[:500]
    r = client.post("/app/login", data={"email": person.email, "password": person.password,
                                        "csrf_token": token.group(1)})
    assert r.status_code == 303, r.text[:500]
    inbox = client.get("/app/inbox")
    assert inbox.status_code == 200, inbox.text[:500]
    found = CSRF_FIELD.search(inbox.text)
    assert found
    return client, found.group(1)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped on purpose: while Playwright's sync API is alive its event loop counts as
    running in this thread, and the suite's async tests could not start theirs. Browser tests
    live in one module, so the browser starts once and is gone before the next module."""
    if not os.path.exists(CHROMIUM):
        message = (f"BROWSER TESTS NOT RUN: {CHROMIUM} is missing; `make browser` installs "
                   "Debian's chromium (with CI=1 this is a failure, not a skip)")
        if os.environ.get("CI"):
            pytest.fail(message)
        _BROWSER_SKIPS.append(message)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    # The pages' Content-Security-Policy forbids eval, so `wait_for_function` strings cannot
    # run in them (which is the point); waits use locators and `expect` instead.
    expect.set_options(timeout=TIMEOUT)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# --- what every browser test shares --------------------------------------------------

TIMEOUT = 8000  # ms: live updates arrive in well under a second; this is the failure bound


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (cookies, storage) on a desktop-sized window."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(TIMEOUT)
    yield ctx
    ctx.close()


def sign_in(page: Any, world: World, person: Person) -> None:
    page.goto(f"{world.server.url}/app/login")
    page.get_by_label("E-mail").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/app/inbox"))


def wait_live(page: Any) -> None:
    page.wait_for_selector('#live-status[data-state="live"]')


# Why browser tests were skipped in this run: said again, loudly, after the summary, so a
# developer never mistakes a green run without a browser for a tested UI.
_BROWSER_SKIPS: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _BROWSER_SKIPS:
        terminalreporter.write_sep("!", _BROWSER_SKIPS[0], red=True, bold=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Debian's Chromium through Playwright")
