"""Real `frontdesk` processes for tests: servers and workers on a scratch database.

The process tests prove what no in-process test can: that a committed event survives a
SIGKILL, that several workers share the outbox, that Redis carries events between two
servers. Everything here is bounded: every wait has a deadline and, when it runs out,
fails with what the processes logged, so a red test says why without a rerun.

Processes start in parallel (`start_*` returns at once, `ready()` waits), because
importing the application costs seconds of CPU on a small machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
from redis.asyncio import Redis
from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import create_token, create_user, ensure_workspace
from frontdesk.core.events import OutboxEvent
from frontdesk.db.engine import make_async_engine, make_sessionmaker, make_sync_engine
from frontdesk.db.migrate import upgrade

FRONTDESK = Path(sys.executable).parent / "frontdesk"
PG_ADMIN_DSN = os.environ.get("FRONTDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FRONTDESK_TEST_REDIS", "redis://127.0.0.1:6379/0")
START_TIMEOUT = 60.0  # two cores, several processes importing at once: be patient, not idle
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def redis_available() -> bool:
    host, _, port = REDIS_URL.split("://", 1)[1].split("/", 1)[0].partition(":")
    try:
        socket.create_connection((host, int(port or 6379)), timeout=2).close()
        return True
    except OSError:
        return False


@contextmanager
def scratch_database(kind: str, tmp: Path) -> Iterator[str]:
    """A freshly migrated database of its own: no other test's dispatcher can touch its
    outbox, so what the processes under test do (or leave undone) is all there is."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'frontdesk.db'}"
        upgrade(url)
        yield url
        return
    name = f"frontdesk_proc_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].split("://", 1)[1]
    url = f"postgresql+asyncpg://{base}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def outbox_state(database_url: str, workspace_id: int) -> dict[str, int]:
    """How many of the workspace's events are in the outbox, and how many are delivered."""
    engine = make_sync_engine(database_url, pooled=False)
    try:
        with engine.connect() as conn:
            total, delivered = conn.execute(
                select(func.count(), func.count(OutboxEvent.dispatched_at))
                .where(OutboxEvent.workspace_id == workspace_id)
            ).one()
    finally:
        engine.dispose()
    return {"events": total, "delivered": delivered}


def sync_dsn(url: str) -> str:
    """The psycopg DSN of a PostgreSQL SQLAlchemy URL, for the tests' own queries."""
    return "postgresql://" + url.split("://", 1)[1]


async def eventually(
    probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float,
    what: str, explain: Callable[[], str] = lambda: "", every: float = 0.05,
) -> T:
    """Poll until `done(probe())`, or fail saying what did not happen and what was seen.
    (The probes are quick synchronous looks at a database or at received messages.)"""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s "
                                 f"(last seen: {value!r}){explain()}")
        await asyncio.sleep(every)


@dataclass
class Proc:
    """One `frontdesk` process, its output in a log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] = field(init=False)
    started_at: float = field(init=False)

    def start(self) -> Proc:
        self.started_at = time.monotonic()
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [str(FRONTDESK), *self.args], env=self.env, stdout=log,
                stderr=subprocess.STDOUT, cwd=self.log_path.parent,
                start_new_session=True,  # a Ctrl-C of pytest does not hit it twice
            )
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self, tail: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-tail:])

    def explain(self) -> str:
        state = "running" if self.alive() else f"exited {self.popen.returncode}"
        return f"\n--- {self.name} (pid {self.pid}, {state}) log tail ---\n{self.log()}"

    def ready(self, timeout: float = START_TIMEOUT) -> Proc:
        raise NotImplementedError

    def _wait_until(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if not self.alive():
                raise AssertionError(f"{self.name} exited before {what}{self.explain()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {what} within {timeout:.0f} s"
                                     f"{self.explain()}")
            time.sleep(0.05)

    def wait_for_log(self, text: str, timeout: float = START_TIMEOUT) -> None:
        self._wait_until(lambda: text in self.log(tail=10_000), f"'{text}' in its log", timeout)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, the way an orchestrator stops it; returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout:.0f} s"
                                 f"{self.explain()}") from exc

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or the OOM killer."""
        if self.alive():
            self.popen.kill()
        self.popen.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: the process stops wherever it is, holding its connections, its open
        transaction and its row locks (a process stuck in a long GC pause, or a hung VM)."""
        self.popen.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.popen.send_signal(signal.SIGCONT)

    def local_tcp_ports(self) -> set[int]:
        """The local ports of its TCP connections (to find its database backends in
        pg_stat_activity.client_port). Linux only: read from /proc."""
        fd_dir = Path(f"/proc/{self.pid}/fd")
        inodes = set()
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return ports


@dataclass
class Server(Proc):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/realtime"

    def ready(self, timeout: float = START_TIMEOUT) -> Server:
        def healthy() -> bool:
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        self._wait_until(healthy, "answer on /healthz", timeout)
        return self


@dataclass
class Worker(Proc):
    def ready(self, timeout: float = START_TIMEOUT) -> Worker:
        self.wait_for_log("Worker running", timeout)
        return self


@dataclass
class Tenant:
    """A workspace with an admin's API token."""

    workspace_id: int
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Cluster:
    """The processes of one test (or module) on one database: starts them, and stops
    whatever is still running at the end, keeping their logs for a failure report."""

    def __init__(self, database_url: str, workdir: Path, *, redis_prefix: str | None = None
                 ) -> None:
        self.database_url = database_url
        self.workdir = workdir
        # A prefix of our own: another test run on the same Redis must not hear our events
        # (workspace ids of different databases collide).
        self.redis_prefix = redis_prefix or f"fdtest-{uuid.uuid4().hex[:10]}"
        self.procs: list[Proc] = []
        self._names: dict[str, int] = {}

    def env(self, *, redis: bool, embedded_worker: bool, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
        env.update({
            "FRONTDESK_DATABASE_URL": self.database_url,
            "FRONTDESK_DATA_DIR": str(self.workdir / "data"),
            "FRONTDESK_WEBHOOKS_ALLOW_PRIVATE": "1",
            "FRONTDESK_EMBEDDED_WORKER": "1" if embedded_worker else "0",
            "FRONTDESK_REDIS_PREFIX": self.redis_prefix,
            "FRONTDESK_SMTP_PORT": "0",  # a test that wants the SMTP server gives a port
            "PYTHONUNBUFFERED": "1",
        })
        if redis:
            env["FRONTDESK_REDIS_URL"] = REDIS_URL
        env.update(extra)
        return env

    def _log_path(self, kind: str) -> tuple[str, Path]:
        n = self._names[kind] = self._names.get(kind, 0) + 1
        name = f"{kind}-{n}"
        return name, self.workdir / f"{name}.log"

    def start_server(self, *, redis: bool = False, embedded_worker: bool = True,
                     **extra: str) -> Server:
        name, log = self._log_path("serve")
        port = free_port()
        server = Server(name, ["serve", "--host", "127.0.0.1", "--port", str(port),
                               "--log-level", "warning"],
                        self.env(redis=redis, embedded_worker=embedded_worker, **extra),
                        log, port=port)
        self.procs.append(server.start())
        return server

    def start_worker(self, *, redis: bool = False, **extra: str) -> Worker:
        name, log = self._log_path("worker")
        worker = Worker(name, ["worker"], self.env(redis=redis, embedded_worker=True, **extra),
                        log)
        self.procs.append(worker.start())
        return worker

    @property
    def redis_channel(self) -> str:
        return f"{self.redis_prefix}:realtime"

    def explain(self) -> str:
        return "".join(p.explain() for p in self.procs)

    def close(self) -> None:
        """Kill what is left: the database goes next, so there is nothing to shut down
        cleanly for (test_shutdown is where a graceful stop is tested)."""
        for proc in self.procs:
            if proc.alive():
                proc.popen.kill()
        for proc in self.procs:
            proc.popen.wait(10)

    async def tenant(self, name: str | None = None) -> Tenant:
        """A workspace and an admin token, made through the service layer on the cluster's
        database (the CLI would do the same in two process starts: seconds each)."""
        name = name or f"ws-{uuid.uuid4().hex[:8]}"
        engine = make_async_engine(self.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                ws = await ensure_workspace(session, name)
                user, _ = await create_user(session, ws, email=f"admin@{name}.test",
                                            role=Role.ADMIN, password="Correct-Horse-9")
                _, token = await create_token(session, ws.id, user.id, "process tests")
                await session.commit()
                return Tenant(ws.id, name, token)
        finally:
            await engine.dispose()


async def create_api_inbox(client: httpx.AsyncClient, server: Server, tenant: Tenant) -> int:
    r = await client.post(f"{server.url}/api/v1/inboxes", headers=tenant.headers,
                          json={"name": f"inbox-{uuid.uuid4().hex[:6]}", "channel": "api"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def push_message(client: httpx.AsyncClient, server: Server, tenant: Tenant, inbox_id: int,
                       *, external_id: str | None = None, identifier: str | None = None,
                       content: str = "Hello, my order is late") -> httpx.Response:
    return await client.post(
        f"{server.url}/api/v1/inboxes/{inbox_id}/incoming", headers=tenant.headers,
        json={"external_id": external_id or uuid.uuid4().hex,
              "contact": {"identifier": identifier or f"cust-{uuid.uuid4().hex[:8]}"},
              "content": content},
    )


def json_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), f"{response.status_code}: {response.text}"
    body: dict[str, Any] = response.json()
    return body


class RealtimeClient:
    """A WebSocket client of /api/v1/realtime that records everything it receives."""

    def __init__(self, server: Server, token: str, *, auth: str = "header") -> None:
        self.server = server
        self.token = token
        self.auth = auth
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()  # set on every message (and on close)

    async def __aenter__(self) -> RealtimeClient:
        headers = {"Authorization": f"Bearer {self.token}"} if self.auth == "header" else {}
        self._ws = await connect(self.server.ws_url, additional_headers=headers, proxy=None,
                                 open_timeout=10)
        if self.auth == "message":
            await self.send({"type": "auth", "token": self.token})
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda m: m.get("type") in ("ready", "error"), what="ready")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                self.messages.append(json.loads(raw))
                self._arrived.set()
        except ConnectionClosed:
            pass
        self.close_code = self._ws.close_code
        self._arrived.set()

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send(json.dumps(message))

    @property
    def events(self) -> list[dict[str, Any]]:
        return [m["event"] for m in self.messages if m.get("type") == "event"]

    async def wait_for(self, match: Callable[[dict[str, Any]], bool], *, what: str,
                       timeout: float = 10.0) -> dict[str, Any]:
        """The first message received so far (or within `timeout`) that matches. Woken by
        each arrival, not polled, so that the tests can measure latency."""
        deadline = time.monotonic() + timeout
        while True:
            self._arrived.clear()
            found = next((m for m in self.messages if match(m)), None)
            if found is not None:
                return found
            if self.closed:
                raise AssertionError(f"the socket closed ({self.close_code}) before {what}; "
                                     f"received: {self.messages[-5:]}")
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - time.monotonic())
            except TimeoutError:
                raise AssertionError(
                    f"no WebSocket message ({what}) within {timeout:.0f} s; received: "
                    f"{self.messages[-5:]}{self.server.explain()}") from None

    @property
    def closed(self) -> bool:
        return self._reader is not None and self._reader.done()

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        await eventually(lambda: self.closed, bool, timeout=timeout,
                         what="the server closing the socket",
                         explain=lambda: f"\nreceived: {self.messages[-5:]}")
        return self.close_code


class RedisTap:
    """Records what is published on a Redis channel (to count deliveries)."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.messages: list[str] = []
        self._redis = Redis.from_url(REDIS_URL)
        self._pubsub = self._redis.pubsub()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RedisTap:
        await self._pubsub.subscribe(self.channel)
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for message in self._pubsub.listen():
            if message.get("type") == "message":
                self.messages.append(message["data"].decode())

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()


class RedisServer:
    """A Redis of the test's own (on a free port, nothing saved to disk), for tests that
    take Redis away from a running Frontdesk; the shared one must stay up for the others."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        with (self.workdir / "redis.log").open("ab") as log:
            self.popen = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self.popen.poll() is not None:
                    raise AssertionError("redis-server did not start: "
                                         + (self.workdir / "redis.log").read_text()) from None
                time.sleep(0.02)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
