"""Intake benchmark: push N inbound messages through the API channel at concurrency C.

    python bench/ingest.py                      # SQLite, 20,000 messages, 32 connections
    python bench/ingest.py --backend postgresql # scratch database on 127.0.0.1:5432
    python bench/ingest.py --both               # SQLite, then PostgreSQL
    python bench/ingest.py --url http://host:8000 --token T --inbox 3   # a running server

Unless --url is given it starts a real `frontdesk serve` on a scratch database, creates a
workspace, an admin, a token and an API inbox through the CLI and the API, warms up, then
measures. It prints one JSON object (with --both: one object keyed by backend) on stdout;
progress goes to stderr.

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio (uvloop when
installed) with every request body encoded before the clock starts. It is not httpx on
purpose: httpx.AsyncClient costs about 1 ms of CPU per request on this 2-core machine
(~360 req/s with a pool of 32 against a server that answers instantly), so it would
measure itself and steal the server's CPU. This client does ~35,000 req/s against the
same server; every run measures that ceiling again (`client_ceiling_rps`) so a result
near it is known to be the client's limit, not the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

PG_ADMIN_DSN = os.environ.get("FRONTDESK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
WORKSPACE = "Bench"
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-password-1"  # a throwaway scratch database


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the client


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with one request in flight at a time.

    It understands exactly what `frontdesk serve` answers (a status line, headers with
    Content-Length, a body); anything else is reported as an error by the caller."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            length = 0
        else:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17: stop if stop > 0 else None])
        if len(self._buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        body = bytes(self._buffer[end + 4: end + 4 + length])
        del self._buffer[: end + 4 + length]
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("the server closed the connection"))

    @property
    def open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        return self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@dataclass
class LoadResult:
    seconds: float
    latencies_ns: list[int]
    statuses: Counter[int]
    failures: Counter[str]
    client_cpu_s: float

    @property
    def sent(self) -> int:
        return len(self.latencies_ns)


async def run_load(host: str, port: int | Sequence[int], requests: Sequence[bytes],
                   concurrency: int, ok: frozenset[int] = frozenset({200, 201})) -> LoadResult:
    """Send every request once over `concurrency` keep-alive connections, as fast as the
    answers come back (a closed loop: each connection sends its next request when the
    previous one is answered). With several ports (several server processes) the
    connections are spread over them in turn, as a load balancer would."""
    ports = [port] if isinstance(port, int) else list(port)
    loop = asyncio.get_running_loop()
    queue: Iterator[bytes] = iter(requests)
    latencies: list[int] = []
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    perf = time.perf_counter_ns

    async def connect(n: int) -> _Connection:
        _, protocol = await loop.create_connection(_Connection, host, ports[n % len(ports)])
        return protocol

    async def worker(n: int) -> None:
        conn = await connect(n)
        try:
            for raw in queue:
                if not conn.open:
                    conn = await connect(n)
                started = perf()
                try:
                    status, _ = await conn.request(raw)
                except ConnectionError as exc:
                    latencies.append(perf() - started)
                    failures[type(exc).__name__] += 1
                    continue
                latencies.append(perf() - started)
                statuses[status] += 1
        finally:
            conn.close()

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    for status, count in statuses.items():
        if status not in ok:
            failures[f"http {status}"] += count
    return LoadResult(seconds, latencies, statuses, failures,
                      (cpu_after.ru_utime - cpu.ru_utime) + (cpu_after.ru_stime - cpu.ru_stime))


def _run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# --------------------------------------------------------------- the workload (realistic)


class Workload:
    """Inbound messages from a pool of customers, as an integration would push them.

    Every customer has an id in the pushing system; a third also give an e-mail address
    and a quarter a phone number (so identity matching looks at one to three identities).
    Some customers write far more than others (their open conversation continues); a small
    share of deliveries repeat an external id already sent (a retry after a timeout),
    which must answer 200 and store nothing."""

    WORDS = ("order", "refund", "delivery", "invoice", "password", "account", "thanks",
             "please", "help", "when", "my", "the", "is", "not", "working", "arrived",
             "late", "broken", "change", "address", "subscription", "cancel")

    def __init__(self, contacts: int, repeat_share: float, seed: int = 7) -> None:
        self._rng = random.Random(seed)
        self._repeat_share = repeat_share
        self._people = [self._person(k) for k in range(contacts)]
        self._sent: list[dict[str, Any]] = []

    @staticmethod
    def _person(k: int) -> dict[str, str]:
        person = {"identifier": f"cust-{k:06d}", "name": f"Customer {k}"}
        if k % 3 == 0:
            person["email"] = f"customer{k}@example.com"
        if k % 4 == 1:
            person["phone"] = f"+4915123{k:06d}"
        return person

    def message(self, prefix: str) -> tuple[dict[str, Any], bool]:
        """The next delivery, and whether it repeats one sent before."""
        rng = self._rng
        if self._sent and rng.random() < self._repeat_share:
            return rng.choice(self._sent), True
        # rng.random() squared: low-numbered customers write much more than the rest.
        person = self._people[int(len(self._people) * rng.random() ** 2)]
        words = rng.choices(self.WORDS, k=rng.randint(5, 60))
        body = {"external_id": f"{prefix}-{len(self._sent) + 1:08d}", "contact": person,
                "content": " ".join(words).capitalize() + "."}
        self._sent.append(body)
        return body, False

    @property
    def distinct_sent(self) -> int:
        return len(self._sent)


def encode_requests(bodies: Sequence[dict[str, Any]], *, host: str, path: str,
                    token: str) -> list[bytes]:
    head = (f"POST {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n"
            "content-type: application/json\r\n").encode()
    out = []
    for body in bodies:
        data = json.dumps(body, separators=(",", ":")).encode()
        out.append(head + b"content-length: %d\r\n\r\n" % len(data) + data)
    return out


# ------------------------------------------------------------------------ measurements


def percentile(sorted_values: Sequence[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[index]


def latency_summary(latencies_ns: Sequence[int]) -> dict[str, float]:
    ms = sorted(v / 1e6 for v in latencies_ns)
    return {
        "p50": round(percentile(ms, 0.50), 2),
        "p95": round(percentile(ms, 0.95), 2),
        "p99": round(percentile(ms, 0.99), 2),
        "max": round(ms[-1], 2) if ms else 0.0,
        "mean": round(sum(ms) / len(ms), 2) if ms else 0.0,
    }


def proc_status(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak, in MiB (Linux /proc)."""
    found: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return found


def proc_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(scratch: Scratch | None) -> dict[int, float]:
    """CPU used so far by each PostgreSQL process serving the scratch database (its
    backends and autovacuum workers, as pg_stat_activity lists them), plus the WAL writer,
    which flushes every commit. Other databases' backends are left out: other developers'
    tests share the PostgreSQL server, and counting them made the figure swing wildly."""
    if scratch is None or scratch.pg_name is None:
        return {}
    rows = scratch.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() OR backend_type = 'walwriter'")
    found: dict[int, float] = {}
    for (pid,) in rows:
        seconds = proc_cpu_seconds(int(pid))
        if seconds is not None:
            found[int(pid)] = seconds
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------- the trivial server (client ceiling)

_TRIVIAL_BODY = b'{"message_id":1,"conversation_id":1,"contact_id":1}'
_TRIVIAL_ANSWER = (b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                   b"content-length: %d\r\n\r\n%s" % (len(_TRIVIAL_BODY), _TRIVIAL_BODY))


class _TrivialServer(asyncio.Protocol):
    """Answers every request at once: what the client alone can do is measured against it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17:].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self._buffer) < end + 4 + length:
                return
            del self._buffer[: end + 4 + length]
            self._transport.write(_TRIVIAL_ANSWER)


def _serve_trivial(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_TrivialServer, "127.0.0.1", port)
        await server.serve_forever()

    _run_async(main())


def measure_client_ceiling(requests: Sequence[bytes], concurrency: int) -> float:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--_trivial-server", str(port)])
    try:
        wait_listening("127.0.0.1", port, proc, timeout=20)
        sample = list(requests[: min(len(requests), 20000)])
        result: LoadResult = _run_async(run_load("127.0.0.1", port, sample, concurrency))
        return round(result.sent / result.seconds)
    finally:
        proc.terminate()
        proc.wait(10)


# ------------------------------------------------------------- a real server to measure


def frontdesk_command() -> list[str]:
    beside = Path(sys.executable).with_name("frontdesk")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("frontdesk")
    if found:
        return [found]
    return [sys.executable, "-c", "from frontdesk.cli import main; main()"]


def wait_listening(host: str, port: int, proc: subprocess.Popen[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited at start (code {proc.returncode})")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listened on {host}:{port} within {timeout:.0f} s")


def http_json(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@dataclass
class Scratch:
    """A database that exists for one run."""

    backend: str
    url: str
    directory: Path
    pg_name: str | None = None

    @classmethod
    @contextlib.contextmanager
    def create(cls, backend: str) -> Iterator[Scratch]:
        directory = Path(tempfile.mkdtemp(prefix=f"frontdesk-bench-{backend}-"))
        try:
            if backend == "sqlite":
                yield cls(backend, f"sqlite+aiosqlite:///{directory / 'frontdesk.db'}", directory)
                return
            import psycopg

            name = f"frontdesk_bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            base = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
            try:
                yield cls(backend, f"postgresql+asyncpg://{base}/{name}", directory, name)
            finally:
                with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing (--sql: an index dropped for a comparison)."""
        if self.backend == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.directory / "frontdesk.db",
                                                    timeout=30)) as conn:
                conn.executescript(sql)
            return
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{self.pg_name}",
                             autocommit=True) as conn:
            conn.execute(sql.encode())

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.backend == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.directory / "frontdesk.db",
                                                    timeout=30)) as conn:
                return list(conn.execute(sql).fetchall())
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{self.pg_name}") as conn:
            return list(conn.execute(sql).fetchall())


@dataclass
class Target:
    host: str
    port: int
    token: str
    inbox: int
    pid: int | None = None
    # With --servers N: every server's port and pid (port and pid are the first's).
    ports: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    # With --workers N: the `frontdesk worker` processes dispatching the events.
    worker_pids: list[int] = field(default_factory=list)

    def cpu_seconds(self) -> float | None:
        """CPU used so far by the server process(es) measured."""
        return _cpu_of(self.pids or ([self.pid] if self.pid else []))

    def worker_cpu_seconds(self) -> float | None:
        """CPU used so far by the worker processes (None without --workers)."""
        return _cpu_of(self.worker_pids)


def _cpu_of(pids: Sequence[int]) -> float | None:
    seconds = [proc_cpu_seconds(pid) for pid in pids]
    known = [value for value in seconds if value is not None]
    return sum(known) if known else None


@contextlib.contextmanager
def started_server(scratch: Scratch, env_extra: dict[str, str], keep_log: str | None = None,
                   workers: int = 0, servers: int = 1,
                   setup_sql: Sequence[str] = ()) -> Iterator[Target]:
    """`frontdesk serve` on the scratch database; with `workers`, that many `frontdesk
    worker` processes dispatch the events instead of the server (the at-scale layout);
    with `servers`, that many `frontdesk serve` processes share the database (PostgreSQL)
    and fan real-time events out through the local Redis, as behind a load balancer."""
    cmd = frontdesk_command()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env.update({"FRONTDESK_DATABASE_URL": scratch.url,
                "FRONTDESK_DATA_DIR": str(scratch.directory / "var"),
                "FRONTDESK_SMTP_PORT": "0"})  # intake through the API only; no mail port
    env.update(env_extra)
    if workers:
        env["FRONTDESK_EMBEDDED_WORKER"] = "0"
    if servers > 1:
        if scratch.backend == "sqlite":
            raise SystemExit("--servers needs PostgreSQL: one process writes an SQLite file")
        env.setdefault("FRONTDESK_REDIS_URL", "redis://127.0.0.1:6379/0")
        env.setdefault("FRONTDESK_REDIS_PREFIX", f"bench-{uuid.uuid4().hex[:8]}")

    def cli(*args: str) -> str:
        done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        if done.returncode != 0:
            raise SystemExit(f"`frontdesk {' '.join(args)}` failed: {done.stderr or done.stdout}")
        return done.stdout

    cli("migrate")
    for statement in setup_sql:  # after the schema, before the server: a variant to compare
        log(f"running {statement!r}")
        scratch.execute(statement)
    cli("admin", "create-user", "--workspace", WORKSPACE, "--email", ADMIN_EMAIL,
        "--password", ADMIN_PASSWORD, "--role", "admin")
    token = cli("admin", "create-token", "--workspace", WORKSPACE, "--email", ADMIN_EMAIL,
                "--name", "bench").strip().splitlines()[-1].strip()
    ports = [free_port() for _ in range(servers)]
    server_log = open(scratch.directory / "server.log", "w")  # noqa: SIM115 - lives with the server
    procs = [subprocess.Popen(
        [*cmd, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=scratch.directory, stdout=server_log, stderr=subprocess.STDOUT,
    ) for port in ports]
    helpers = [subprocess.Popen([*cmd, "worker"], env=env, cwd=scratch.directory,
                                stdout=server_log, stderr=subprocess.STDOUT)
               for _ in range(workers)]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_listening("127.0.0.1", port, proc, timeout=60)
        status, inbox = http_json("POST", f"http://127.0.0.1:{ports[0]}/api/v1/inboxes", token,
                                  {"name": "Bench API", "channel": "api"})
        if status != 201:
            raise SystemExit(f"creating the inbox answered {status}: {inbox}")
        yield Target("127.0.0.1", ports[0], token, int(inbox["id"]), procs[0].pid,
                     ports=ports, pids=[proc.pid for proc in procs],
                     worker_pids=[helper.pid for helper in helpers])
    finally:
        for process in (*procs, *helpers):
            process.send_signal(signal.SIGINT)
        for process in (*procs, *helpers):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        server_log.close()
        tail = (scratch.directory / "server.log").read_text(errors="replace")
        if keep_log:
            Path(keep_log).write_text(tail)
        problems = [ln for ln in tail.splitlines() if "Traceback" in ln or " ERROR " in ln]
        if problems:
            log(f"the server logged {len(problems)} error(s); last lines of its log:\n"
                + "\n".join(tail.splitlines()[-20:]))


# ------------------------------------------------------------------------------ a run


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def event_figures(scratch: Scratch, since: datetime, timeout: float = 60.0) -> dict[str, Any]:
    """How far behind the dispatcher ran: wait until every event is delivered, then the
    delay from commit to delivery of the events of the measured phase."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while True:
        pending = scratch.query("SELECT count(*) FROM events WHERE dispatched_at IS NULL")[0][0]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    drained = time.monotonic() - started
    rows = scratch.query(
        "SELECT created_at, dispatched_at FROM events WHERE dispatched_at IS NOT NULL")
    lags = sorted(
        (_parse_time(done) - _parse_time(made)).total_seconds() * 1000
        for made, done in rows if _parse_time(made) >= since
    )
    total = scratch.query("SELECT count(*) FROM events")[0][0]
    return {
        "recorded": total,
        "undelivered_after_drain": pending,
        "drain_after_load_s": round(drained, 2),
        "dispatch_lag_ms": {"p50": round(percentile(lags, 0.5), 1),
                            "p99": round(percentile(lags, 0.99), 1),
                            "max": round(lags[-1], 1) if lags else 0.0},
    }


def bench_target(target: Target, args: argparse.Namespace, backend: str,
                 scratch: Scratch | None) -> dict[str, Any]:
    workload = Workload(contacts=args.contacts, repeat_share=args.repeats, seed=args.seed)
    path = f"/api/v1/inboxes/{target.inbox}/incoming"
    host_header = f"{target.host}:{target.port}"
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    warm = [workload.message(prefix)[0] for _ in range(args.warmup)]
    measured: list[dict[str, Any]] = []
    repeats = 0
    for _ in range(args.n):
        body, repeat = workload.message(prefix)
        measured.append(body)
        repeats += repeat
    warm_raw = encode_requests(warm, host=host_header, path=path, token=target.token)
    raw = encode_requests(measured, host=host_header, path=path, token=target.token)

    ceiling = None if args.no_client_check else measure_client_ceiling(raw, args.concurrency)

    if warm_raw:
        log(f"{backend}: warming up with {len(warm_raw)} messages")
        warmup: LoadResult = _run_async(run_load(target.host, target.ports or target.port,
                                                 warm_raw, args.concurrency))
        if warmup.failures:
            log(f"warm-up failures: {dict(warmup.failures)}")
    log(f"{backend}: pushing {len(raw)} messages at concurrency {args.concurrency}")
    load_before = os.getloadavg()[0]
    since = datetime.now(UTC)
    server_cpu = target.cpu_seconds()
    worker_cpu = target.worker_cpu_seconds()
    database_cpu = postgres_cpu_seconds(scratch) if backend == "postgresql" else None
    profiler = None
    if args.py_spy and target.pid:
        beside = Path(sys.executable).with_name("py-spy")
        spy = str(beside) if beside.exists() else (shutil.which("py-spy") or "py-spy")
        kind = {".svg": "flamegraph", ".json": "speedscope"}.get(Path(args.py_spy).suffix, "raw")
        profiler = subprocess.Popen([spy, "record", "--pid", str(target.pid), "--threads",
                                     "--nonblocking", "--gil", "--rate", "250",
                                     "--output", args.py_spy, "--format", kind],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    result: LoadResult = _run_async(run_load(target.host, target.ports or target.port, raw,
                                             args.concurrency))
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(60)
    server_cpu_after = target.cpu_seconds()
    worker_cpu_after = target.worker_cpu_seconds()
    database_cpu_after = postgres_cpu_seconds(scratch) if backend == "postgresql" else None

    figures: dict[str, Any] = {
        "backend": backend,
        "n": result.sent,
        "concurrency": args.concurrency,
        "rate": round(result.sent / result.seconds, 1),
        "latency_ms": latency_summary(result.latencies_ns),
        "errors": sum(result.failures.values()),
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "repeats_sent": repeats,
        "contacts": args.contacts,
        "warmup": len(warm_raw),
        "seconds": round(result.seconds, 2),
        "dispatch": f"{args.workers} worker process(es)" if args.workers else "in serve",
        "serve_processes": max(1, len(target.pids)),
        # Other processes competing for the CPUs make every figure worse: say how busy.
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": [round(load_before, 2),
                                                          round(os.getloadavg()[0], 2)]},
    }
    if result.failures:
        figures["failures"] = dict(result.failures)
    if target.pid:
        memory = proc_status(target.pid)
        figures["server_rss_mb"] = memory.get("VmRSS")
        figures["server_peak_rss_mb"] = memory.get("VmHWM")
    if server_cpu is not None and server_cpu_after is not None:
        # CPU per message is the steadier figure when other work shares the machine.
        figures["server_cpu_cores"] = round((server_cpu_after - server_cpu) / result.seconds, 2)
        figures["server_cpu_ms_per_msg"] = round(
            (server_cpu_after - server_cpu) * 1000 / max(1, result.sent), 3)
    if worker_cpu is not None and worker_cpu_after is not None:
        # The events the server committed are dispatched there: part of each message's cost.
        figures["worker_cpu_ms_per_msg"] = round(
            (worker_cpu_after - worker_cpu) * 1000 / max(1, result.sent), 3)
    if database_cpu is not None and database_cpu_after:
        # A backend that started meanwhile started from nothing.
        used = sum(seconds - database_cpu.get(pid, 0.0)
                   for pid, seconds in database_cpu_after.items())
        figures["postgres_cpu_cores"] = round(used / result.seconds, 2)
        figures["postgres_cpu_ms_per_msg"] = round(used * 1000 / max(1, result.sent), 3)
    # All of it, whatever process spends it: on two cores PostgreSQL can only beat SQLite
    # (one process) once this is below twice SQLite's (docs/performance.md).
    parts = [figures.get(name) for name in ("server_cpu_ms_per_msg", "worker_cpu_ms_per_msg",
                                            "postgres_cpu_ms_per_msg")]
    if parts[0] is not None:
        figures["total_cpu_ms_per_msg"] = round(sum(part or 0.0 for part in parts), 3)
    figures["client_cpu_cores"] = round(result.client_cpu_s / result.seconds, 2)
    if ceiling is not None:
        figures["client_ceiling_rps"] = ceiling
    if scratch is not None:
        figures["events"] = event_figures(scratch, since)
        stored = scratch.query("SELECT count(*) FROM messages")[0][0]
        figures["stored_messages"] = stored
        figures["expected_messages"] = workload.distinct_sent
        if stored != workload.distinct_sent:
            log(f"MISMATCH: {stored} messages stored, {workload.distinct_sent} distinct sent")
    return figures


def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    env_extra = dict(item.split("=", 1) for item in args.env)
    with Scratch.create(backend) as scratch, \
            started_server(scratch, env_extra, args.server_log, args.workers,
                           args.servers, args.sql) as target:
        log(f"{backend}: server pid {target.pid} on port {target.port}, inbox {target.inbox}")
        return bench_target(target, args, backend, scratch)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--both", action="store_true", help="SQLite, then PostgreSQL")
    parser.add_argument("-n", type=int, default=20000, help="measured messages (20000)")
    parser.add_argument("-c", "--concurrency", type=int, default=32, help="connections (32)")
    parser.add_argument("--warmup", type=int, default=2000, help="unmeasured messages first")
    parser.add_argument("--contacts", type=int, default=1000, help="distinct customers")
    parser.add_argument("--repeats", type=float, default=0.02,
                        help="share of deliveries that repeat an external id (0.02)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--url", help="a running server instead of a scratch one")
    parser.add_argument("--token", help="with --url: an admin API token")
    parser.add_argument("--inbox", type=int, help="with --url: an API-channel inbox id")
    parser.add_argument("--server-pid", type=int, help="with --url: read its memory and CPU")
    parser.add_argument("--env", action="append", default=[], metavar="FRONTDESK_X=V",
                        help="extra environment for the scratch server (repeatable)")
    parser.add_argument("--sql", action="append", default=[], metavar="STATEMENT",
                        help="run on the scratch database after migrating, before the server "
                        "starts (say, DROP INDEX ... to measure what an index costs)")
    parser.add_argument("--server-log", metavar="PATH", help="keep the scratch server's log")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="dispatch events in N `frontdesk worker` processes, not in serve")
    parser.add_argument("--servers", type=int, default=1, metavar="N",
                        help="PostgreSQL: N `frontdesk serve` processes (Redis fan-out), "
                        "the client's connections spread over them")
    parser.add_argument("--no-client-check", action="store_true",
                        help="skip measuring the client's own ceiling")
    parser.add_argument("--py-spy", metavar="OUT",
                        help="profile the server with py-spy during the measured phase "
                        "(.svg: flame graph, .json: speedscope, else collapsed stacks)")
    parser.add_argument("--_trivial-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._trivial_server:
        _serve_trivial(args._trivial_server)
        return 0
    if args.url:
        if not (args.token and args.inbox):
            parser.error("--url needs --token and --inbox")
        from urllib.parse import urlsplit

        parts = urlsplit(args.url)
        target = Target(parts.hostname or "127.0.0.1", parts.port or 80, args.token,
                        args.inbox, args.server_pid)
        print(json.dumps(bench_target(target, args, "remote", None)))
        return 0
    if args.both:
        results = {backend: bench_backend(backend, args) for backend in ("sqlite", "postgresql")}
        print(json.dumps(results))
        return 0
    print(json.dumps(bench_backend(args.backend, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
