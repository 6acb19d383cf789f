"""The event dispatcher when a listener fails: the failing event alone is charged, the
others of its batch are delivered once; after the cap it waits as a dead letter for an
admin, who can send it again.

Each backend gets an app of its own whose embedded dispatcher does not run (the suite's
shared app would deliver these events before the test's dispatcher could): the tests
dispatch by hand, with the app's real listeners plus one that refuses chosen events.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Role
from frontdesk.app import create_app
from frontdesk.channels.email.models import EmailRecord, OutboundEmail
from frontdesk.channels.email.service import receive_email
from frontdesk.config import Settings
from frontdesk.core.dispatcher import AfterCommit, DispatchedEvent, EventDispatcher
from frontdesk.core.events import OutboxEvent
from frontdesk.db.base import utcnow
from frontdesk.db.engine import make_sessionmaker
from frontdesk.runtime import Runtime
from frontdesk.webhooks.models import WebhookDelivery
from tests.channels.email.mailmaker import make_mail
from tests.factories import Factory, Workspace, unique
from tests.notifications.test_push import Browser
from tests.processes import pg_available, scratch_database
from tests.webhooks.receiver import Receiver, Reply

# The backoff base of the tests' dispatchers: an event one test charged stays unclaimable
# for the rest of the module, whose tests count what their own dispatchers claim.
HOUR = 3600


@dataclass
class QuietApp:
    api: httpx.AsyncClient
    runtime: Runtime
    factory: Factory
    backend: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def quiet(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[QuietApp]:
    if request.param == "postgresql" and not pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not reachable")
    home = tmp_path_factory.mktemp("dispatch")
    with scratch_database(request.param, home) as url:
        settings = Settings(database_url=url, embedded_worker=False, data_dir=home,
                            webhooks_allow_private=True, push_allow_private=True)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport,
                                         base_url="http://frontdesk.test") as api:
                runtime: Runtime = app.state.runtime
                yield QuietApp(api, runtime, Factory(api, runtime), request.param)


class Refuser:
    """A listener that raises on the events it is told to refuse, and counts the events it
    handled in work that was committed (through its after-commit callback)."""

    name = "refuser"

    def __init__(self, refused: set[int], committed: Counter[int] | None = None) -> None:
        self.refused = refused
        self.committed: Counter[int] = Counter() if committed is None else committed

    async def handle(self, session: AsyncSession,
                     events: Sequence[DispatchedEvent]) -> AfterCommit | None:
        for event in events:
            if event.id in self.refused:
                raise RuntimeError(f"cannot handle event {event.id}")
        ids = [e.id for e in events]
        return lambda: self.committed.update(ids)


def dispatcher(quiet: QuietApp, refuser: Refuser, **options: Any) -> EventDispatcher:
    """The app's own listeners, then the refuser: what they wrote before it raised must
    be rolled back with the rest."""
    return EventDispatcher(quiet.runtime.sessions, [*quiet.runtime.listeners, refuser],
                           **options)


async def drain(dispatcher: EventDispatcher) -> None:
    while await dispatcher.dispatch_once():
        pass


async def deliver_earlier_tests_events(quiet: QuietApp) -> None:
    await drain(EventDispatcher(quiet.runtime.sessions, quiet.runtime.listeners))


async def notes(quiet: QuietApp, ws: Workspace, count: int) -> list[int]:
    """`count` contact_note.created events of a fresh contact; returns their ids."""
    conversation = await quiet.factory.conversation(ws)
    for n in range(count):
        r = await quiet.api.post(f"/api/v1/contacts/{conversation['contact_id']}/notes",
                                 headers=ws.admin.headers, json={"body": f"note {n}"})
        assert r.status_code == 201, r.text
    async with quiet.runtime.read_sessions() as session:
        return list((await session.execute(
            select(OutboxEvent.id).where(OutboxEvent.workspace_id == ws.id,
                                         OutboxEvent.type == "contact_note.created")
            .order_by(OutboxEvent.id))).scalars())


async def outbox_rows(quiet: QuietApp, ids: Sequence[int]) -> dict[int, OutboxEvent]:
    async with quiet.runtime.read_sessions() as session:
        return {e.id: e for e in (await session.execute(
            select(OutboxEvent).where(OutboxEvent.id.in_(ids)))).scalars()}


async def deliveries_per_event(quiet: QuietApp, ws: Workspace) -> Counter[int]:
    async with quiet.runtime.read_sessions() as session:
        return Counter(dict((await session.execute(
            select(WebhookDelivery.event_id, func.count())
            .where(WebhookDelivery.workspace_id == ws.id)
            .group_by(WebhookDelivery.event_id))).tuples().all()))


async def test_a_listener_failing_on_one_event_of_a_batch_charges_that_event_alone(
        quiet: QuietApp) -> None:
    await deliver_earlier_tests_events(quiet)
    ws = await quiet.factory.api_workspace()
    await quiet.factory.webhook(ws)
    ids = await notes(quiet, ws, 5)
    poison = ids[2]
    refuser = Refuser({poison})
    started = utcnow()

    handled = await dispatcher(quiet, refuser, retry_base_seconds=HOUR).dispatch_once()

    rows = await outbox_rows(quiet, ids)
    good = [i for i in ids if i != poison]
    assert handled >= len(ids)
    assert all(refuser.committed[i] == 1 for i in good), refuser.committed
    assert refuser.committed[poison] == 0
    for i in good:
        assert rows[i].dispatched_at is not None and rows[i].last_error is None
        assert rows[i].attempts == 1 and rows[i].failed_at is None
    charged = rows[poison]
    assert charged.dispatched_at is None and charged.failed_at is None
    assert charged.attempts == 1
    assert charged.last_error == f"RuntimeError: cannot handle event {poison}"
    assert charged.available_at >= started + timedelta(seconds=2 * HOUR)  # base * 2**1
    # The webhook listener wrote its rows in the rolled-back batch and again event by
    # event: one delivery per delivered event, none for the failed one.
    deliveries = await deliveries_per_event(quiet, ws)
    assert all(deliveries[i] == 1 for i in good), deliveries
    assert deliveries[poison] == 0


async def test_an_email_reply_in_a_failed_batch_is_queued_once(quiet: QuietApp) -> None:
    await deliver_earlier_tests_events(quiet)
    ws = await quiet.factory.api_workspace()
    _, address = await quiet.factory.email_inbox(ws)
    received = await receive_email(
        quiet.runtime, make_mail(sender=f"{unique('c')}@customer.example", to=address),
        inbox_id=None, envelope_recipients=[address], source="test")
    r = await quiet.api.post(f"/api/v1/conversations/{received.conversation_id}/messages",
                             headers=ws.admin.headers, json={"content": "We are on it"})
    assert r.status_code in (200, 201), r.text
    reply_id = r.json()["id"]
    [poison] = await notes(quiet, ws, 1)  # the same batch as the reply's message.created

    await dispatcher(quiet, Refuser({poison}), retry_base_seconds=HOUR).dispatch_once()

    async with quiet.runtime.read_sessions() as session:
        queued = await session.scalar(select(func.count()).select_from(OutboundEmail)
                                      .where(OutboundEmail.message_id == reply_id))
        records = await session.scalar(select(func.count()).select_from(EmailRecord)
                                       .where(EmailRecord.message_id == reply_id))
    assert (queued, records) == (1, 1)
    [row] = (await outbox_rows(quiet, [poison])).values()
    assert row.last_error is not None and row.dispatched_at is None


async def test_after_the_cap_an_event_is_a_dead_letter_an_admin_lists_and_retries(
        quiet: QuietApp) -> None:
    await deliver_earlier_tests_events(quiet)
    ws = await quiet.factory.api_workspace()
    await quiet.factory.webhook(ws)
    [poison] = await notes(quiet, ws, 1)
    refuser = Refuser({poison})
    failing = dispatcher(quiet, refuser, max_attempts=3, retry_base_seconds=0)

    for _ in range(3):
        await failing.dispatch_once()
    assert await failing.dispatch_once() == 0  # dead letters are not claimed

    [row] = (await outbox_rows(quiet, [poison])).values()
    assert row.failed_at is not None and row.dispatched_at is None and row.attempts == 3
    r = await quiet.api.get("/api/v1/events/failed", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    [listed] = r.json()["items"]
    assert listed["id"] == poison and listed["type"] == "contact_note.created"
    assert listed["attempts"] == 3 and listed["data"]["note"]["body"] == "note 0"
    assert listed["last_error"] == f"RuntimeError: cannot handle event {poison}"
    agent = await quiet.factory.api_member(ws, Role.AGENT)
    assert (await quiet.api.get("/api/v1/events/failed", headers=agent.headers)
            ).status_code == 403
    other = await quiet.factory.api_workspace()
    r = await quiet.api.get("/api/v1/events/failed", headers=other.admin.headers)
    assert r.json()["items"] == []
    r = await quiet.api.post(f"/api/v1/events/{poison}/retry", headers=other.admin.headers)
    assert r.status_code == 404, r.text

    refuser.refused.clear()  # the cause is fixed
    r = await quiet.api.post(f"/api/v1/events/{poison}/retry", headers=ws.admin.headers)
    assert r.status_code == 202, r.text
    assert r.json()["failed_at"] is None and r.json()["attempts"] == 0
    await drain(failing)

    assert refuser.committed[poison] == 1
    assert (await deliveries_per_event(quiet, ws))[poison] == 1
    [row] = (await outbox_rows(quiet, [poison])).values()
    assert row.dispatched_at is not None and row.failed_at is None
    r = await quiet.api.get("/api/v1/events/failed", headers=ws.admin.headers)
    assert r.json()["items"] == []
    r = await quiet.api.post(f"/api/v1/events/{poison}/retry", headers=ws.admin.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "event_not_failed"


async def test_a_push_found_in_a_rolled_back_batch_is_sent_once(quiet: QuietApp) -> None:
    await deliver_earlier_tests_events(quiet)
    push_service = Receiver()
    push_service.answer(then=Reply(status=201, body=b""))
    await push_service.start()
    try:
        ws = await quiet.factory.api_workspace()
        agent = await quiet.factory.api_member(ws, Role.AGENT)
        r = await quiet.api.post("/api/v1/push/subscriptions", headers=agent.headers,
                                 json=Browser(push_service.url).subscription())
        assert r.status_code == 201, r.text
        conversation = await quiet.factory.conversation(ws)
        await quiet.factory.assign(ws, conversation["conversation_id"], agent)
        [poison] = await notes(quiet, ws, 1)  # after the assignment, in the same batch

        await dispatcher(quiet, Refuser({poison}), retry_base_seconds=HOUR).dispatch_once()

        await push_service.wait_for(1)
        await asyncio.sleep(0.5)  # a second push would be on its way by now
        assert len(push_service.requests) == 1
    finally:
        await push_service.stop()


async def test_two_dispatchers_at_once_charge_no_innocent_event(quiet: QuietApp) -> None:
    if quiet.backend != "postgresql":
        pytest.skip("one dispatcher at a time on SQLite (a single writer)")
    await deliver_earlier_tests_events(quiet)
    ws = await quiet.factory.api_workspace()
    ids = await notes(quiet, ws, 120)
    poisons = {ids[7], ids[40], ids[41], ids[90]}
    committed: Counter[int] = Counter()
    first, second = (EventDispatcher(quiet.runtime.sessions,
                                     [Refuser(poisons, committed)],
                                     batch_size=10, retry_base_seconds=HOUR)
                     for _ in range(2))

    await asyncio.gather(drain(first), drain(second))

    rows = await outbox_rows(quiet, ids)
    innocent = [i for i in ids if i not in poisons]
    assert [i for i in innocent if committed[i] != 1] == []
    assert [i for i in innocent if rows[i].last_error is not None] == []
    assert all(rows[i].dispatched_at is not None for i in innocent)
    for i in poisons:
        assert committed[i] == 0 and rows[i].dispatched_at is None
        assert rows[i].last_error == f"RuntimeError: cannot handle event {i}"


async def test_a_dispatcher_whose_connection_died_delivers_on_a_later_pass(
        quiet: QuietApp, caplog: pytest.LogCaptureFixture) -> None:
    # On PostgreSQL the dispatcher's pool does not ping a connection before each batch
    # (runtime.dispatch_engine): a connection the server dropped fails one pass, which must
    # throw it away, so that the next pass connects again and delivers.
    if quiet.backend != "postgresql":
        pytest.skip("the dispatcher shares the writing engine on SQLite")
    await deliver_earlier_tests_events(quiet)
    engine = quiet.runtime.dispatch_engine
    sessions = make_sessionmaker(engine)
    await drain(EventDispatcher(sessions, quiet.runtime.listeners))  # a connection is pooled
    async with engine.connect() as conn:
        pooled = await conn.scalar(text("SELECT pg_backend_pid()"))
    async with quiet.runtime.read_sessions() as session:
        assert await session.scalar(text(f"SELECT pg_terminate_backend({int(pooled)})"))
    ws = await quiet.factory.api_workspace()
    ids = await notes(quiet, ws, 3)
    committed: Counter[int] = Counter()
    dispatcher = EventDispatcher(sessions, [*quiet.runtime.listeners, Refuser(set(), committed)],
                                 poll_interval=0.05)
    running = asyncio.create_task(dispatcher.run_forever())
    try:
        for _ in range(200):
            if all(committed[i] for i in ids):
                break
            await asyncio.sleep(0.05)
    finally:
        dispatcher.stop()
        await running
    assert [committed[i] for i in ids] == [1, 1, 1]
    rows = await outbox_rows(quiet, ids)
    assert all(rows[i].dispatched_at is not None for i in ids)
    assert "event dispatch failed" in caplog.text  # the dead connection was met, not missed
