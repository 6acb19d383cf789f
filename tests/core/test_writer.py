"""The group-commit writer: units share a transaction, fail alone, and survive a deadlock
with another process's transaction."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Connection, Engine, create_engine, text

from frontdesk.core.writer import GroupCommitWriter
from tests.conftest import PG_ADMIN_DSN, _pg_available


@pytest.fixture
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("writer") / "w.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER)"))
        conn.execute(text("INSERT INTO counters VALUES (1, 0), (2, 0)"))
    yield engine
    engine.dispose()


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    if not _pg_available():
        pytest.skip("PostgreSQL is not reachable")
    name = f"frontdesk_writer_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE counters (id integer PRIMARY KEY, value integer)")
        conn.execute("INSERT INTO counters VALUES (1, 0), (2, 0)")
    yield dsn
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _increment(row: int) -> object:
    def unit(conn: Connection) -> int:
        conn.execute(text("UPDATE counters SET value = value + 1 WHERE id = :id"), {"id": row})
        return int(conn.execute(text("SELECT value FROM counters WHERE id = :id"),
                                {"id": row}).scalar_one())
    return unit


def _fail(conn: Connection) -> None:
    conn.execute(text("UPDATE counters SET value = value + 100 WHERE id = 1"))
    raise ValueError("this unit is refused")


def _values(engine: Engine) -> dict[int, int]:
    with engine.connect() as conn:
        return {row.id: row.value for row in conn.execute(text("SELECT id, value FROM counters"))}


async def test_concurrent_units_commit_together_and_a_failing_unit_fails_alone(
    sqlite_engine: Engine,
) -> None:
    writer = GroupCommitWriter(sqlite_engine)
    await writer.start()
    try:
        results = await asyncio.gather(
            writer.submit(_increment(1)), writer.submit(_fail), writer.submit(_increment(1)),
            writer.submit(_increment(2)), return_exceptions=True,
        )
    finally:
        await writer.stop()
    assert results[0] == 1 and results[2] == 2 and results[3] == 1
    assert isinstance(results[1], ValueError)
    assert _values(sqlite_engine) == {1: 2, 2: 1}  # nothing of the failed unit stands


async def test_a_batch_that_loses_a_deadlock_runs_again_in_a_new_transaction(
    pg_dsn: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Another process holds row 2 and then waits for row 1, which an earlier unit of the
    writer's batch locked. PostgreSQL picks the writer as the victim (its deadlock_timeout is
    the shorter). Rolling back only the failed unit would keep row 1 locked and deadlock
    again; the writer must roll the batch back, let the other transaction finish, and run
    the whole batch again, so every unit succeeds exactly once."""
    url = "postgresql+psycopg://" + pg_dsn.split("://", 1)[1]
    engine = create_engine(url, connect_args={"options": "-c deadlock_timeout=50ms"})
    other = psycopg.connect(pg_dsn, options="-c deadlock_timeout=5s")
    other.execute("UPDATE counters SET value = value + 10 WHERE id = 2")  # holds row 2
    writer = GroupCommitWriter(engine)
    await writer.start()
    caplog.set_level(logging.INFO, logger="frontdesk.core.writer")
    row1_locked = threading.Event()

    def lock_row_1(conn: Connection) -> int:
        conn.execute(text("UPDATE counters SET value = value + 1 WHERE id = 1"))
        row1_locked.set()
        return 1

    def then_take_row_1() -> None:
        row1_locked.wait(10)
        other.execute("UPDATE counters SET value = value + 10 WHERE id = 1")  # waits, cycle
        other.commit()

    try:
        taker = asyncio.get_running_loop().run_in_executor(None, then_take_row_1)
        results = await asyncio.wait_for(
            asyncio.gather(writer.submit(lock_row_1), writer.submit(_increment(2))), 30)
        await asyncio.wait_for(taker, 30)
    finally:
        await writer.stop()
        other.close()
    assert "lost a deadlock" in caplog.text  # the cycle did happen, and the writer lost it
    assert results == [1, 11]
    assert _values(engine) == {1: 11, 2: 11}
    engine.dispose()


def _batch_of(seen: list[object], release: threading.Event | None = None) -> object:
    """A unit that notes which batch ran it (the batch's cursor, kept alive here so that no
    later batch's cursor can reuse its id), after waiting for `release` if given."""
    def unit(conn: Connection) -> int:
        if release is not None:
            release.wait(10)
        seen.append(conn.info["frontdesk.writer.cursor"])
        return len(seen)
    return unit


async def test_a_loaded_writer_waits_a_moment_to_fill_its_next_batch_but_an_idle_one_never(
    sqlite_engine: Engine,
) -> None:
    """With gathering on, a lone message on an idle writer starts at once; under load the
    requests answered by one batch have a moment to join the next, instead of every batch
    taking only the half that arrived while the other ran."""
    gather = 0.5
    writer = GroupCommitWriter(sqlite_engine, gather_seconds=gather, gather_units=4)
    await writer.start()
    seen: list[object] = []
    release = threading.Event()
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await writer.submit(_batch_of(seen))
        assert loop.time() - started < gather / 2  # idle: no pause

        running = asyncio.ensure_future(writer.submit(_batch_of(seen, release)))
        await asyncio.sleep(0.05)  # that batch is running (it waits for `release`)
        queued = asyncio.ensure_future(writer.submit(_batch_of(seen)))
        await asyncio.sleep(0.05)
        release.set()
        await running  # answered; the writer now holds back the one queued meanwhile
        late = asyncio.ensure_future(writer.submit(_batch_of(seen)))
        await asyncio.gather(queued, late)
    finally:
        await writer.stop()
    idle_batch, loaded_batch, gathered, also_gathered = seen
    assert gathered is also_gathered  # the late unit joined the one queued before it
    assert len({id(idle_batch), id(loaded_batch), id(gathered)}) == 3
