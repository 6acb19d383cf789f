"""Engines and sessions.

Two engines share one database: an async engine serves requests, and a sync engine feeds
the group-commit writers (see conversations.intake) and the migrations. Both are derived
from the one FRONTDESK_DATABASE_URL, whichever driver it names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
SYNC_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg"}


class UnsupportedDatabase(ValueError):
    pass


def _backend(url: URL) -> str:
    backend = url.get_backend_name()
    if backend not in ASYNC_DRIVERS:
        raise UnsupportedDatabase(
            f"FRONTDESK_DATABASE_URL names '{backend}'; Frontdesk runs on sqlite or postgresql"
        )
    return backend


def async_url(raw: str) -> URL:
    url = make_url(raw)
    return url.set(drivername=ASYNC_DRIVERS[_backend(url)])


def sync_url(raw: str) -> URL:
    url = make_url(raw)
    return url.set(drivername=SYNC_DRIVERS[_backend(url)])


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; NORMAL sync is durable across a process
    # crash (the WAL is fsynced at checkpoints); busy_timeout makes writers queue, not fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # SQLite's own lower() folds ASCII only, so ILIKE (lower(x) LIKE lower(y)) would not
    # find "Олег" when searching "олег"; PostgreSQL's ILIKE folds every script.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_transaction_control(
    engine: Engine, *, immediate: bool, poll_for_lock: bool = False
) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT and begins lazily; take control
    # (SQLAlchemy's documented recipe). Writers BEGIN IMMEDIATE: they queue for the write
    # lock up front instead of failing at once when a read must be upgraded to a write.
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if poll_for_lock and immediate:
            _begin_immediate_polling(conn)
        else:
            conn.exec_driver_sql(begin)


# SQLite's busy handler, while another connection holds the write lock, sleeps 1, 2, 5,
# 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between tries: a writer that finds the lock held
# for 20 ms (the event dispatcher's transaction) gets it only after 33 ms. For the
# group-commit writer that gap is added to every request of the batch, so its threads ask
# again every 0.2-2 ms themselves (sleeping without the GIL), then fall back to the busy
# handler so that a lock held for long still ends in the usual error.
_LOCK_POLL_SECONDS = 5.0
_SQLITE_BUSY = 5


def _begin_immediate_polling(conn: Any) -> None:
    import sqlite3
    import time

    raw = conn.connection.dbapi_connection
    deadline = time.monotonic() + _LOCK_POLL_SECONDS
    pause = 0.0002
    raw.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorcode", _SQLITE_BUSY) & 0xFF == _SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    break
            time.sleep(pause)
            pause = min(pause * 1.5, 0.002)
    finally:
        raw.execute("PRAGMA busy_timeout=15000")
    conn.exec_driver_sql("BEGIN IMMEDIATE")  # waits with the busy handler, errors as usual


def _ensure_sqlite_dir(url: URL) -> None:
    from pathlib import Path

    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def make_async_engine(raw: str, *, writer: bool = True, pre_ping: bool = True,
                      pool_size: int = 10) -> AsyncEngine:
    """`pre_ping=False` (PostgreSQL) skips the round trip that checks every connection as it
    leaves the pool: for a loop that retries anyway, like the event dispatcher, whose
    failed pass drops the dead connection and the next takes a new one."""
    url = async_url(raw)
    _ensure_sqlite_dir(url)
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 15}
    else:
        kwargs.update(pool_size=pool_size, max_overflow=20, pool_pre_ping=pre_ping)
    engine = create_async_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _sqlite_transaction_control(engine.sync_engine, immediate=writer)
    return engine


def make_sync_engine(raw: str, *, pooled: bool = True) -> Engine:
    url = sync_url(raw)
    _ensure_sqlite_dir(url)
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 15, "check_same_thread": False}
    if not pooled:
        kwargs["poolclass"] = NullPool
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        _sqlite_transaction_control(engine, immediate=True, poll_for_lock=True)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on error. Services never commit."""
    async with sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
