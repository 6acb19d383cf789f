"""Webhook delivery: from a committed event to a signed POST, with retries over a day.

Two halves, joined by the `webhook_deliveries` table:

- WebhookListener (a dispatcher listener) turns each event into one pending delivery per
  matching active subscription, inside the dispatch transaction. The insert is keyed on
  (subscription, event) and does nothing on conflict, so an event dispatched twice (the
  dispatcher is at-least-once) still makes one delivery.
- WebhookSender claims due deliveries, sends them, and records what happened. It never
  holds a database transaction open across HTTP: claim (and lease) → commit → send →
  record in a new short transaction. A process that dies mid-send leaves the lease to
  expire, and the delivery is tried again (at-least-once; receivers dedupe on the
  X-Frontdesk-Delivery header).

Retries: full-jitter exponential backoff. Attempt n failing waits a random time in
[0, min(max_delay, base * 2**(n-1))]; with the defaults (15 s base, 1 h cap, 30 attempts)
the last attempt comes at most ~22 hours after the first. Then the delivery is `failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import event as sa_event
from sqlalchemy import func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.config import Settings
from frontdesk.core.background import PumpLoop
from frontdesk.core.dispatcher import AfterCommit, DispatchedEvent
from frontdesk.core.events import ADMIN_EVENT_TYPES, PRIVATE_EVENTS
from frontdesk.core.netguard import UnsafeURL, guarded_request
from frontdesk.db.base import utcnow
from frontdesk.webhooks import service
from frontdesk.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from frontdesk.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

ATTEMPT_LOG_LIMIT = 50
LEASE_MARGIN_SECONDS = 30.0
# Spelled as a literal, not a bound parameter: PostgreSQL only uses the partial index
# (WHERE status = 'pending') when it can see the predicate in the plan it reuses.
_IS_PENDING = WebhookDelivery.status == literal_column("'pending'")


# "*" is every event of the work (conversations, messages, contacts...); workspace
# administration events are sent only to subscriptions that name them: a "*" receiver
# written before they existed must not start getting members, tokens and webhook URLs.
_NAMED_ONLY = frozenset(t.value for t in ADMIN_EVENT_TYPES)


def wants(subscribed: list[str], event_type: str) -> bool:
    """Whether a subscription to `subscribed` gets events of this type."""
    if event_type in subscribed:
        return True
    return "*" in subscribed and event_type not in _NAMED_ONLY


def backoff_ceiling(attempt: int, base: float, max_delay: float) -> float:
    """The longest wait after the `attempt`-th failure (1-based): base, 2·base, 4·base..."""
    return float(min(max_delay, base * 2 ** min(max(attempt - 1, 0), 40)))


def full_jitter(ceiling: float) -> float:
    # Full jitter: receivers that come back after an outage aren't hit by every retry at
    # once (AWS Architecture Blog, "Exponential Backoff And Jitter").
    return random.uniform(0, ceiling)


class WebhookListener:
    """Dispatcher listener: one pending delivery per (event, matching active subscription)."""

    name = "webhooks"

    def __init__(self, on_new_deliveries: Callable[[], None] | None = None) -> None:
        self._on_new_deliveries = on_new_deliveries

    async def handle(self, session: AsyncSession,
                     events: Sequence[DispatchedEvent]) -> AfterCommit | None:
        workspace_ids = {e.workspace_id for e in events}
        subscriptions = (await session.execute(
            select(WebhookSubscription.id, WebhookSubscription.workspace_id,
                   WebhookSubscription.events)
            .where(WebhookSubscription.workspace_id.in_(workspace_ids),
                   WebhookSubscription.active.is_(True))
        )).all()
        if not subscriptions:
            return None
        by_workspace: dict[int, list[tuple[int, list[str]]]] = {}
        for sub_id, workspace_id, wanted in subscriptions:
            by_workspace.setdefault(workspace_id, []).append((sub_id, wanted))
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for event in events:
            if event.type in PRIVATE_EVENTS:  # one agent's own business, even under "*"
                continue
            for sub_id, wanted in by_workspace.get(event.workspace_id, ()):
                if not wants(wanted, event.type):
                    continue
                rows.append({
                    "workspace_id": event.workspace_id, "subscription_id": sub_id,
                    "event_id": event.id, "event_type": event.type,
                    "payload": {**event.envelope(), "workspace_id": event.workspace_id},
                    "status": DeliveryStatus.PENDING.value, "attempts": 0,
                    "next_attempt_at": now, "attempt_log": [], "created_at": now,
                })
        if not rows:
            return None
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await session.execute(
            insert(WebhookDelivery).on_conflict_do_nothing(
                index_elements=["subscription_id", "event_id"]
            ),
            rows,
        )
        # After the commit: new deliveries go out without waiting for the sender's poll.
        return self._on_new_deliveries


@dataclass(frozen=True)
class _Job:
    delivery_id: int
    subscription_id: int
    event_type: str
    payload: dict[str, Any]
    attempt: int
    url: str
    secret: str
    active: bool


@dataclass(frozen=True)
class _Outcome:
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    gone: bool = False  # 410: the receiver asks us to stop


class WebhookSender(PumpLoop):
    """Sends due deliveries, at most `concurrency` at a time, and schedules retries."""

    what = "webhook sender"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        read_sessions: async_sessionmaker[AsyncSession],
        *,
        allow_private: bool = False,
        timeout_seconds: float = 10.0,
        max_attempts: int = 30,
        retry_base_seconds: float = 15.0,
        retry_max_delay_seconds: float = 3600.0,
        concurrency: int = 10,
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__(poll_interval)
        self._sessions = sessions
        self._read_sessions = read_sessions
        self.allow_private = allow_private
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max(1, max_attempts)
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_delay_seconds = retry_max_delay_seconds
        self.concurrency = max(1, concurrency)
        self.jitter: Callable[[float], float] = full_jitter
        self._inflight: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls, sessions: async_sessionmaker[AsyncSession],
        read_sessions: async_sessionmaker[AsyncSession], settings: Settings,
    ) -> WebhookSender:
        return cls(
            sessions, read_sessions, allow_private=settings.webhooks_allow_private,
            timeout_seconds=settings.webhook_timeout_seconds,
            max_attempts=settings.webhook_max_attempts,
            retry_base_seconds=settings.webhook_retry_base_seconds,
            retry_max_delay_seconds=settings.webhook_retry_max_delay_seconds,
        )

    # -- control -----------------------------------------------------------------------

    def wake_after_commit(self, session: AsyncSession) -> None:
        """Wake once the session's transaction commits (a manual retry made a delivery due;
        waking earlier would find nothing yet)."""
        sa_event.listen(session.sync_session, "after_commit", lambda _s: self.wake(), once=True)

    async def run_forever(self) -> None:
        await self._run_rounds()
        await self._drain()

    async def _drain(self, grace: float = 5.0) -> None:
        # In-flight sends get a moment to finish; the rest are cancelled and their lease
        # expires, so another process (or the next start) tries them again.
        if not self._inflight:
            return
        _done, pending = await asyncio.wait(set(self._inflight), timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _pump(self) -> float:
        """Start what is due, as far as free slots allow. Returns how long to sleep."""
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            return self.poll_interval  # a finishing send wakes us
        due_in = await self._seconds_until_due()
        if due_in is None:
            return self.poll_interval
        if due_in > 0:
            return min(due_in, self.poll_interval)
        jobs = await self._claim(free)
        for job in jobs:
            task = asyncio.create_task(self._deliver(job), name=f"webhook-{job.delivery_id}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        # Nothing claimed although something was due: another process holds it. Don't spin.
        return 0 if jobs else min(1.0, self.poll_interval)

    async def send_due(self) -> int:
        """Claim and send what is due now, waiting for the sends (for tests and tooling)."""
        jobs = await self._claim(self.concurrency)
        await asyncio.gather(*(self._deliver(job) for job in jobs))
        return len(jobs)

    # -- the three steps ---------------------------------------------------------------

    async def _seconds_until_due(self) -> float | None:
        # A read, not a claim: on SQLite a claim takes the database's write lock, and the
        # sender must not take it every few seconds for nothing.
        async with self._read_sessions() as session:
            due = (await session.execute(
                select(func.min(WebhookDelivery.next_attempt_at)).where(_IS_PENDING)
            )).scalar_one_or_none()
        if due is None:
            return None
        return max(0.0, (due - utcnow()).total_seconds())

    async def _claim(self, limit: int) -> list[_Job]:
        now = utcnow()
        lease_until = now + timedelta(seconds=self.timeout_seconds + LEASE_MARGIN_SECONDS)
        async with self._sessions() as session, session.begin():
            due = (
                select(WebhookDelivery.id)
                .where(_IS_PENDING, WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            # The claim writes first: on SQLite that takes the write lock at once, on
            # PostgreSQL the rows are locked (SKIP LOCKED: senders never wait on each
            # other). The lease keeps others off until it runs out.
            claimed = (await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(due.scalar_subquery()))
                .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=lease_until)
                .returning(WebhookDelivery.id, WebhookDelivery.subscription_id,
                           WebhookDelivery.event_type, WebhookDelivery.payload,
                           WebhookDelivery.attempts)
                .execution_options(synchronize_session=False)
            )).all()
            if not claimed:
                return []
            subscriptions = {
                row.id: row for row in (await session.execute(
                    select(WebhookSubscription.id, WebhookSubscription.url,
                           WebhookSubscription.secret, WebhookSubscription.active)
                    .where(WebhookSubscription.id.in_({c.subscription_id for c in claimed}))
                )).all()
            }
        jobs = []
        for delivery_id, sub_id, event_type, payload, attempt in claimed:
            sub = subscriptions.get(sub_id)
            if sub is None:
                continue  # deleted meanwhile; its deliveries went with it
            jobs.append(_Job(delivery_id, sub_id, event_type, payload, attempt, sub.url,
                             sub.secret, sub.active))
        return jobs

    async def _deliver(self, job: _Job) -> None:
        try:
            if not job.active:
                outcome = _Outcome(False, None, "the webhook was deactivated", 0)
            else:
                outcome = await self._send(job)
            await self._record(job, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery %s: recording the attempt failed", job.delivery_id)
        finally:
            self._wake.set()  # a slot is free

    async def _send(self, job: _Job) -> _Outcome:
        body = json.dumps(job.payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = signed_headers(job.secret, event_type=job.event_type,
                                 delivery_id=job.delivery_id, body=body)
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            response = await guarded_request(
                job.url, allow_private=self.allow_private, headers=headers, content=body,
                limit_seconds=self.timeout_seconds,
            )
        except UnsafeURL as exc:
            return _Outcome(False, None, exc.reason, took())
        except TimeoutError:
            return _Outcome(False, None, f"no answer within {self.timeout_seconds:g} s", took())
        except httpx.HTTPError as exc:
            return _Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500], took())
        code = response.status_code
        if 200 <= code < 300:
            return _Outcome(True, code, None, took())
        if 300 <= code < 400:
            location = response.headers.get("location", "(no Location header)")
            return _Outcome(False, code, f"redirect to {location} not followed; point the "
                                         "webhook at the final URL", took())
        if code == 410:
            return _Outcome(False, code, "the receiver answered 410 Gone; the webhook was "
                                         "deactivated", took(), gone=True)
        excerpt = " ".join(response.body_excerpt.split())[:300]
        return _Outcome(False, code, f"HTTP {code}" + (f": {excerpt}" if excerpt else ""),
                        took())

    async def _record(self, job: _Job, outcome: _Outcome) -> None:
        now = utcnow()
        async with self._sessions() as session, session.begin():
            delivery = await session.get(WebhookDelivery, job.delivery_id)
            if delivery is None:
                return  # the webhook was deleted while we were sending
            entry = {"at": now.isoformat(), "status_code": outcome.status_code,
                     "error": outcome.error, "duration_ms": outcome.duration_ms}
            delivery.attempt_log = [*delivery.attempt_log, entry][-ATTEMPT_LOG_LIMIT:]
            delivery.last_attempt_at = now
            delivery.last_status_code = outcome.status_code
            delivery.last_error = outcome.error
            if outcome.succeeded:
                delivery.status = DeliveryStatus.SUCCEEDED.value
                delivery.next_attempt_at = None
            elif outcome.gone or not job.active or delivery.attempts >= self.max_attempts:
                delivery.status = DeliveryStatus.FAILED.value
                delivery.next_attempt_at = None
            else:
                ceiling = backoff_ceiling(delivery.attempts, self.retry_base_seconds,
                                          self.retry_max_delay_seconds)
                delivery.status = DeliveryStatus.PENDING.value
                delivery.next_attempt_at = now + timedelta(seconds=self.jitter(ceiling))
            if outcome.gone:
                await service.deactivate_subscription(session, job.subscription_id,
                                                      outcome.error or "410 Gone")
        if not outcome.succeeded:
            log.info("webhook delivery %s (webhook %s, attempt %d) failed: %s",
                     job.delivery_id, job.subscription_id, job.attempt, outcome.error)
