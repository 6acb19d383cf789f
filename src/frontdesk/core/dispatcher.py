"""The event dispatcher: hands committed outbox events to listeners, at least once.

It claims a batch of undelivered events, marking them dispatched as it claims them, lets
every listener handle them inside the same transaction and commits. The mark is only seen
once the listeners are done and committed: if a listener fails the transaction rolls back
and the events stay undelivered. A process killed anywhere in between
leaves the events undelivered, so the next dispatcher (after a restart, or another worker)
delivers them again: listeners must be idempotent. Listeners that write to the database
do so in the dispatch transaction, which makes their effects exactly-once.

A batch that fails is delivered again at once, one event at a time, each in a SAVEPOINT
of one transaction that holds exactly the failed batch's rows (those no other dispatcher
took meanwhile): the good events are delivered, and only the event whose listeners raise
is charged (attempts, last_error, a backoff in available_at). After `max_attempts` it is
dead-lettered (`failed_at`): never claimed again until an admin retries it
(`GET /api/v1/events/failed`, `POST /api/v1/events/{id}/retry`).

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

from sqlalchemy import Integer, Table, Update, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from frontdesk.core.events import OutboxEvent
from frontdesk.db.base import utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
# A failing event waits retry_base * 2**attempts before its next try, at most this many
# doublings (about an hour with the default base of one second).
MAX_BACKOFF_DOUBLINGS = 12

AfterCommit = Callable[[], None]


@dataclass(frozen=True)
class DispatchedEvent:
    id: int
    workspace_id: int
    type: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int = 1  # how many times it has been claimed, this time included

    def envelope(self) -> dict[str, Any]:
        """The event as sent to the outside world (WebSocket, webhooks)."""
        return {"id": self.id, "type": self.type, "created_at": self.created_at.isoformat(),
                "data": self.payload}


class Listener(Protocol):
    """Handles a batch inside the dispatch transaction. It may write through the session
    but never commits or rolls back: the batch's "dispatched" mark is in that transaction,
    and ending it early would deliver the batch again, for ever. To fail, raise.

    What must only happen once the work is committed (waking a sender, sending a push) is
    returned as a callable, not kept on the listener: the dispatcher runs it after the
    commit, and forgets it if the batch, or this event's SAVEPOINT, is rolled back."""

    name: str

    async def handle(self, session: AsyncSession,
                     events: Sequence[DispatchedEvent]) -> AfterCommit | None: ...


class EventDispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        listeners: Sequence[Listener],
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        max_attempts: int = MAX_ATTEMPTS,
        retry_base_seconds: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self._listeners = list(listeners)
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_attempts = max(1, max_attempts)
        self._retry_base_seconds = retry_base_seconds
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
        """Claim and deliver one batch. Returns how many events it handled (delivered, or
        charged with a failure)."""
        claimed: list[int] = []
        try:
            return await self._dispatch_batch(claimed)
        except Exception as exc:
            if not claimed:
                raise  # the claim itself failed (no database): nothing to blame on an event
            # One bad event must not hold up the rest, nor be blamed on them.
            log.warning("dispatching a batch of %d events failed (%s); delivering them one "
                        "by one to find the failing one", len(claimed), exc)
            return await self._dispatch_one_by_one(claimed)

    async def _dispatch_batch(self, claimed: list[int]) -> int:
        async with self._sessions() as session:
            async with session.begin():
                events = await self._claim(session, self._batch_size)
                claimed.extend(e.id for e in events)
                if not events:
                    return 0
                after_commit = await self._run_listeners(session, events)
            for callback in after_commit:
                callback()
        return len(events)

    async def _dispatch_one_by_one(self, event_ids: Sequence[int]) -> int:
        """The failed batch again, in one transaction holding its rows (those still
        undelivered: another dispatcher may have taken some meanwhile, and keeps them),
        each event's listeners in a SAVEPOINT of their own. The rows stay locked from the
        claim to the commit, so the charge lands on the event that failed here and on no
        other, whatever other dispatchers do."""
        after_commit: list[AfterCommit] = []
        async with self._sessions() as session:
            async with session.begin():
                events = await self._claim(session, len(event_ids), only=event_ids)
                for event in events:
                    try:
                        async with session.begin_nested():
                            callbacks = await self._run_listeners(session, [event])
                    except Exception as exc:
                        await self._charge(session, event, exc)
                    else:
                        after_commit.extend(callbacks)
            for callback in after_commit:
                callback()
        return len(events)

    async def _run_listeners(self, session: AsyncSession,
                             events: Sequence[DispatchedEvent]) -> list[AfterCommit]:
        after_commit: list[AfterCommit] = []
        for listener in self._listeners:
            callback = await listener.handle(session, events)
            if callback is not None:
                after_commit.append(callback)
        return after_commit

    async def _charge(self, session: AsyncSession, event: DispatchedEvent,
                      error: Exception) -> None:
        """Record the failure on the event (its claim already counted the attempt) and take
        back its dispatched mark: retried after a backoff, or dead-lettered at the cap."""
        table = cast(Table, OutboxEvent.__table__)
        values: dict[str, Any] = {"dispatched_at": None,
                                  "last_error": f"{type(error).__name__}: {error}"[:2000]}
        if event.attempts >= self._max_attempts:
            log.error("event %s (%s) failed %d times; dead-lettered until an admin retries "
                      "it: %s", event.id, event.type, event.attempts, error)
            values["failed_at"] = utcnow()
        else:
            log.warning("event %s (%s) failed (attempt %d of %d): %s", event.id, event.type,
                        event.attempts, self._max_attempts, error)
            delay = self._retry_base_seconds * 2 ** min(event.attempts, MAX_BACKOFF_DOUBLINGS)
            values["available_at"] = utcnow() + timedelta(seconds=delay)
        await session.execute(update(table).where(table.c.id == event.id).values(values))

    async def _claim(self, session: AsyncSession, limit: int, *,
                     only: Sequence[int] | None = None) -> list[DispatchedEvent]:
        statement = _CLAIM if only is None else _CLAIM_ONLY
        params: dict[str, Any] = {"now": utcnow(), "limit": limit}
        if only is not None:
            params["only"] = list(only)
        rows = await session.execute(statement, params)
        events = [DispatchedEvent(*row) for row in rows.all()]
        events.sort(key=lambda e: e.id)
        return events


def _claim_statement(*, only: bool) -> Update:
    """The claim, built once (with binds for the time and the limit): building it again for
    every batch was a fifth of the dispatcher's CPU under intake load."""
    table = cast(Table, OutboxEvent.__table__)
    now = bindparam("now", type_=table.c.dispatched_at.type)
    # A MATERIALIZED CTE, not `IN (subquery)`: the planner may run a subquery more than
    # once (the inner side of a nested loop), and a LIMIT ... SKIP LOCKED run twice can
    # pick two different sets of rows. A materialized CTE runs exactly once.
    due = (
        select(table.c.id)
        .where(table.c.dispatched_at.is_(None), table.c.failed_at.is_(None),
               table.c.available_at <= now)
        .order_by(table.c.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    if only:
        due = due.where(table.c.id.in_(bindparam("only", expanding=True)))
    due_ids = due.cte("due").prefix_with("MATERIALIZED")
    # The claim writes first (attempts + 1): on SQLite that takes the write lock at
    # once, on PostgreSQL the row locks; either way no other dispatcher gets them.
    # Marking them dispatched in the same statement saves a second UPDATE of every row
    # (a statement, and a dead row version each, per batch); the mark only counts once
    # the listeners' transaction commits. Core, not the ORM's bulk UPDATE: that one
    # would look for the rows in the session first, for nothing.
    return (
        update(table)
        .where(table.c.id.in_(select(due_ids.c.id)))
        .values(attempts=table.c.attempts + 1, dispatched_at=now)
        .returning(table.c.id, table.c.workspace_id, table.c.type, table.c.payload,
                   table.c.created_at, table.c.attempts)
    )


_CLAIM = _claim_statement(only=False)
_CLAIM_ONLY = _claim_statement(only=True)


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
