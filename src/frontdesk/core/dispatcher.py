"""The event dispatcher: hands committed outbox events to listeners, at least once.

It claims a batch of undelivered events, marking them dispatched as it claims them, lets
every listener handle them inside the same transaction and commits. The mark is only seen
once the listeners are done and committed: if a listener fails the transaction rolls back
and the events stay undelivered. A process killed anywhere in between
leaves the events undelivered, so the next dispatcher (after a restart, or another worker)
delivers them again: listeners must be idempotent. Listeners that write to the database
do so in the dispatch transaction, which makes their effects exactly-once.

On PostgreSQL many dispatchers run side by side (`frontdesk worker`, several web
processes): the claim uses FOR UPDATE SKIP LOCKED so they never wait on each other. A
process that commits events wakes its own dispatcher directly and the other processes'
through PostgreSQL NOTIFY (`CrossProcessWakeup`), so an event committed by a web process
is dispatched by a worker within milliseconds, not at the worker's next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from frontdesk.core.events import OutboxEvent
from frontdesk.db.base import utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class DispatchedEvent:
    id: int
    workspace_id: int
    type: str
    payload: dict[str, Any]
    created_at: datetime

    def envelope(self) -> dict[str, Any]:
        """The event as sent to the outside world (WebSocket, webhooks)."""
        return {"id": self.id, "type": self.type, "created_at": self.created_at.isoformat(),
                "data": self.payload}


class Listener(Protocol):
    """Handles a batch inside the dispatch transaction. It may write through the session
    but never commits or rolls back: the batch's "dispatched" mark is in that transaction,
    and ending it early would deliver the batch again, for ever. To fail, raise."""

    name: str

    async def handle(self, session: AsyncSession, events: Sequence[DispatchedEvent]) -> None: ...


class EventDispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        listeners: Sequence[Listener],
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        after_dispatch: Sequence[Callable[[], None]] = (),
    ) -> None:
        self._sessions = sessions
        self._listeners = list(listeners)
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._after_dispatch = list(after_dispatch)
        self._wake = asyncio.Event()
        self._stopping = False
        self._announce: list[Callable[[], None]] = []

    def announce_to(self, callback: Callable[[], None]) -> None:
        """Also call `callback` on every wake(): how other processes hear of new events."""
        self._announce.append(callback)

    def wake(self) -> None:
        """Called after a commit that recorded events, so they go out without a poll delay
        (here, and in every other process that dispatches from this database)."""
        self._wake.set()
        for announce in self._announce:
            announce()

    def wake_here(self) -> None:
        """Another process committed events: dispatch soon, telling nobody else."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run_forever(self) -> None:
        while not self._stopping:
            # Cleared before the claim, not after the wait: a wake that arrives while a
            # batch is being claimed or delivered then triggers another pass at once.
            self._wake.clear()
            try:
                handled = await self.dispatch_once()
            except Exception:
                log.exception("event dispatch failed; retrying")
                handled = 0
                await asyncio.sleep(self._poll_interval)
            if handled or self._stopping:
                continue  # there may be more waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)

    async def dispatch_once(self) -> int:
        """Claim and deliver one batch. Returns how many events it handled."""
        try:
            return await self._dispatch(self._batch_size)
        except Exception as exc:
            # One bad event must not hold up the rest: go one by one and park the bad one.
            log.warning("dispatching a batch failed (%s); isolating the failing event", exc)
            return await self._dispatch_singly()

    async def _dispatch(self, limit: int) -> int:
        async with self._sessions() as session, session.begin():
            events = await self._claim(session, limit, dispatched=True)
            if not events:
                return 0
            for listener in self._listeners:
                await listener.handle(session, events)
        for callback in self._after_dispatch:
            callback()
        return len(events)

    async def _dispatch_singly(self) -> int:
        handled = 0
        for _ in range(self._batch_size):
            try:
                if not await self._dispatch(1):
                    break
                handled += 1
            except Exception as exc:
                await self._park_failed_head(str(exc))
                handled += 1
        return handled

    async def _park_failed_head(self, error: str) -> None:
        async with self._sessions() as session, session.begin():
            claimed = await self._claim(session, 1, dispatched=False)
            if not claimed:
                return
            row = await session.get(OutboxEvent, claimed[0].id)
            assert row is not None
            row.last_error = error[:2000]
            if row.attempts >= MAX_ATTEMPTS:
                log.error("event %s (%s) failed %d times; giving up: %s",
                          row.id, row.type, row.attempts, error)
                row.dispatched_at = utcnow()
            else:
                row.available_at = utcnow() + timedelta(seconds=2 ** min(row.attempts, 12))

    async def _claim(self, session: AsyncSession, limit: int, *,
                     dispatched: bool) -> list[DispatchedEvent]:
        # A MATERIALIZED CTE, not `IN (subquery)`: the planner may run a subquery more than
        # once (the inner side of a nested loop), and a LIMIT ... SKIP LOCKED run twice can
        # pick two different sets of rows. A materialized CTE runs exactly once.
        due = (
            select(OutboxEvent.id)
            .where(OutboxEvent.dispatched_at.is_(None), OutboxEvent.available_at <= utcnow())
            .order_by(OutboxEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
            .prefix_with("MATERIALIZED")
        )
        # The claim writes first (attempts + 1): on SQLite that takes the write lock at
        # once, on PostgreSQL the row locks; either way no other dispatcher gets them.
        # Marking them dispatched in the same statement saves a second UPDATE of every row
        # (a statement, and a dead row version each, per batch); the mark only counts once
        # the listeners' transaction commits. Core, not the ORM's bulk UPDATE: that one
        # would look for the rows in the session first, for nothing.
        table = cast(Table, OutboxEvent.__table__)
        values: dict[str, Any] = {"attempts": table.c.attempts + 1}
        if dispatched:
            values["dispatched_at"] = utcnow()
        rows = await session.execute(
            update(table)
            .where(table.c.id.in_(select(due.c.id)))
            .values(values)
            .returning(table.c.id, table.c.workspace_id, table.c.type, table.c.payload,
                       table.c.created_at)
        )
        events = [DispatchedEvent(*row) for row in rows.all()]
        events.sort(key=lambda e: e.id)
        return events


class CrossProcessWakeup:
    """PostgreSQL LISTEN/NOTIFY between the processes sharing one database.

    A process that committed events rings (`ring()`, coalesced: one NOTIFY in flight at a
    time, however many commits asked for it); a process that dispatches listens and wakes
    its dispatcher at once. The NOTIFY is sent after the commit on a connection of its own,
    off the request path, rather than inside the writing transaction: PostgreSQL serialises
    the commits of notifying transactions on one global lock. The dispatcher's poll stays
    the safety net: a notification lost while this connection was down costs at most one
    poll interval, and a reconnect wakes the dispatcher once in case something was missed.
    """

    CHANNEL = "frontdesk_outbox"

    def __init__(self, engine: AsyncEngine, *, on_ring: Callable[[], None],
                 reconnect_delay: float = 1.0) -> None:
        self._engine = engine
        self._on_ring = on_ring
        self._reconnect_delay = reconnect_delay
        self._listen = False
        self._pending = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self, *, listen: bool, wait_seconds: float = 5.0) -> None:
        """Connect (and LISTEN if this process dispatches). A database that is not there
        yet does not stop the start: the connection is retried in the background."""
        self._listen = listen
        self._task = asyncio.create_task(self._run(), name="outbox-wakeup")
        try:
            await asyncio.wait_for(self._connected.wait(), wait_seconds)
        except TimeoutError:
            log.warning("no LISTEN/NOTIFY connection yet; dispatchers fall back to polling")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def ring(self) -> None:
        self._pending.set()

    async def _run(self) -> None:
        while True:
            conn: AsyncConnection | None = None
            try:
                conn = await self._engine.connect()
                await self._serve(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN/NOTIFY connection lost (%s); reconnecting", exc)
            finally:
                self._connected.clear()
                if conn is not None:
                    # Never back into the pool: the connection still LISTENs.
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.invalidate())
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close())
            await asyncio.sleep(self._reconnect_delay)

    async def _serve(self, conn: AsyncConnection) -> None:
        raw: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's
        lost = asyncio.Event()
        raw.add_termination_listener(lambda _conn: lost.set())
        own_pid = raw.get_server_pid()

        def heard(_conn: Any, pid: int, _channel: str, _payload: str) -> None:
            if pid != own_pid:  # our own ring: our dispatcher was woken directly
                self._on_ring()

        if self._listen:
            await raw.add_listener(self.CHANNEL, heard)
            self._on_ring()  # whatever was committed while we were not listening
        self._connected.set()
        while not lost.is_set():
            ringing = asyncio.create_task(self._pending.wait())
            dropped = asyncio.create_task(lost.wait())
            try:
                await asyncio.wait({ringing, dropped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ringing.cancel()
                dropped.cancel()
            if self._pending.is_set():
                self._pending.clear()
                await raw.execute(f"NOTIFY {self.CHANNEL}")
        raise ConnectionError("the server closed the connection")
