"""Intake of a whole batch at once (`ingest_many`, the writer's fast path) stores and
announces exactly what taking the same messages one by one (`ingest_inbound`) does, and
the hand-built event payloads are the pydantic contract, key for key."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest
from sqlalchemy import select

from frontdesk.contacts.identities import ContactClaim, Identity
from frontdesk.contacts.models import IdentityKind
from frontdesk.contacts.schemas import ContactOut
from frontdesk.conversations.events import ConversationEvent, MessageCreated
from frontdesk.conversations.intake import InboundMessage, Intake, ingest_inbound, ingest_many
from frontdesk.conversations.models import Conversation
from frontdesk.conversations.schemas import ConversationOut, MessageOut
from frontdesk.core.events import OutboxEvent
from frontdesk.runtime import Runtime
from tests.factories import Factory, Workspace

_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


def _claim(identifier: str | None = None, *, email: str | None = None, name: str | None = None
           ) -> ContactClaim:
    ids = [Identity(IdentityKind.EXTERNAL, identifier, "api")] if identifier else []
    return ContactClaim(name=name, email=email, external_ids=ids)


async def _prepare(factory: Factory) -> tuple[Workspace, int, dict[str, int]]:
    """A workspace whose inbox already holds: a sender with an open, tagged conversation,
    one whose conversation is resolved, one whose conversation is pending."""
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    conversations = {}
    for who in ("open", "resolved", "pending"):
        ids = await factory.incoming(ws, inbox, external_id=f"before-{who}",
                                     identifier=f"known-{who}", name=who.title())
        conversations[who] = ids["conversation_id"]
    await factory.tag(ws, conversations["open"], "vip", "billing")
    await factory.set_status(ws, conversations["resolved"], "resolved")
    await factory.set_status(ws, conversations["pending"], "pending")
    return ws, inbox, conversations


def _batch(ws: Workspace, inbox: int) -> list[InboundMessage]:
    def message(external_id: str, claim: ContactClaim, **extra: Any) -> InboundMessage:
        return InboundMessage(workspace_id=ws.id, inbox_id=inbox, external_id=external_id,
                              contact=claim, content=f"text of {external_id}", **extra)

    return [
        message("m1", _claim("new-1", name="Ann")),               # new sender
        message("m2", _claim("new-1")),                           # same sender, same batch
        message("m1", _claim("new-1")),                           # repeat within the batch
        message("m3", _claim(email="bob@example.com")),           # new sender by e-mail
        message("m4", _claim("bob-id", email="bob@example.com")),  # found by e-mail, gains an id
        message("m5", _claim("known-open"), subject="ignored"),   # continues, tags in payload
        message("m6", _claim("known-resolved")),                  # resolved: a new conversation
        message("m7", _claim("known-pending")),                   # pending: reopened
        message("m8", _claim("known-pending")),                   # ...and continued
        message("before-open", _claim("known-open")),             # stored before the batch
        message("m9", _claim("new-2", email="carol@example.com"),
                attachments=[{"url": None, "filename": "a.txt", "content_type": "text/plain",
                              "size": 3}]),
    ]


class _Symbols:
    """Ids and times replaced by the order they first appear in, so that two workspaces'
    outcomes can be compared."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, int], str] = {}

    def id(self, kind: str, value: int) -> str:
        return self.seen.setdefault((kind, value), f"{kind}#{len(self.seen)}")

    _KINDS = {"sender_contact_id": "contact", "contact_id": "contact",
              "conversation_id": "conversation", "message_id": "message", "inbox_id": "inbox",
              "assignee_id": "user", "sender_user_id": "user", "team_id": "team"}

    def payload(self, value: Any, key: str = "", parent: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self.payload(v, k, key) for k, v in value.items()}
        if isinstance(value, list):
            return [self.payload(v, key, parent) for v in value]
        if isinstance(value, str) and _ISO.match(value):
            return "<time>"
        if isinstance(value, int) and not isinstance(value, bool):
            if key == "id":
                return self.id(parent, value)
            if key in self._KINDS:
                return self.id(self._KINDS[key], value)
        return value


async def _outcome(runtime: Runtime, ws: Workspace, results: list[Any], since: int
                   ) -> tuple[list[Any], list[Any]]:
    symbols = _Symbols()
    shaped = [(symbols.id("message", r.message_id), symbols.id("conversation",
               r.conversation_id), symbols.id("contact", r.contact_id), r.created)
              for r in results]
    async with runtime.read_sessions() as session:
        rows = (await session.execute(
            select(OutboxEvent.type, OutboxEvent.payload)
            .where(OutboxEvent.workspace_id == ws.id, OutboxEvent.id > since)
            .order_by(OutboxEvent.id)
        )).all()
    return shaped, [(type_, symbols.payload(payload)) for type_, payload in rows]


def _anonymous(event: Any) -> str:
    return re.sub(r"'[a-z]+#\d+'", "'<id>'", repr(sorted(event[1].items())) + event[0])


async def _last_event_id(runtime: Runtime) -> int:
    async with runtime.read_sessions() as session:
        rows = (await session.execute(select(OutboxEvent.id).order_by(OutboxEvent.id.desc())
                                      .limit(1))).scalars().all()
    return rows[0] if rows else 0


async def test_a_batch_stores_and_announces_what_one_by_one_intake_does(
    factory: Factory, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    one_ws, one_inbox, _ = await _prepare(factory)
    many_ws, many_inbox, _ = await _prepare(factory)
    via_writer_ws, via_writer_inbox, _ = await _prepare(factory)
    since = await _last_event_id(runtime)

    def one_by_one() -> list[Any]:
        with runtime.sync_engine.connect() as conn, conn.begin():
            return [ingest_inbound(conn, m) for m in _batch(one_ws, one_inbox)]

    def all_at_once() -> list[Any]:
        with runtime.sync_engine.connect() as conn, conn.begin():
            return ingest_many(conn, _batch(many_ws, many_inbox))

    one = await asyncio.to_thread(one_by_one)
    many = await asyncio.to_thread(all_at_once)
    # Submitted in one go, the writer takes them as one batch and runs them together.
    caplog.set_level(logging.INFO, logger="frontdesk.core.writer")
    via_writer = await asyncio.gather(*[
        runtime.writer.submit(Intake(m)) for m in _batch(via_writer_ws, via_writer_inbox)
    ])

    expected = await _outcome(runtime, one_ws, one, since)
    assert [r[3] for r in expected[0]] == [True, True, False, True, True, True, True, True,
                                           True, False, True]
    assert await _outcome(runtime, many_ws, many, since) == expected
    # Through the writer too; on PostgreSQL two writer connections take different senders,
    # so only each sender's events keep their order: compare them as a set.
    if runtime.is_sqlite:  # one writer connection: nothing raced the fast path
        assert "one by one" not in caplog.text
    results, events = await _outcome(runtime, via_writer_ws, list(via_writer), since)
    assert results == expected[0]
    assert sorted(map(_anonymous, events)) == sorted(map(_anonymous, expected[1]))
    types = [t for t, _ in expected[1]]
    assert types.count("contact.created") == 3
    assert types.count("conversation.created") == 4  # m1, m3, m6, m9
    assert types.count("conversation.status_changed") == 1
    assert types.count("message.created") == 9


async def test_one_bad_message_in_a_batch_fails_alone(
    factory: Factory, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="frontdesk.core.writer")
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    good = [InboundMessage(workspace_id=ws.id, inbox_id=inbox, external_id=f"ok-{n}",
                           contact=_claim(f"c-{n}"), content="fine") for n in range(5)]
    # An inbox that does not exist: its conversation cannot be stored (foreign key).
    bad = InboundMessage(workspace_id=ws.id, inbox_id=2**62, external_id="bad",
                         contact=_claim("c-bad"), content="no inbox")
    outcomes = await asyncio.gather(
        *[runtime.writer.submit(Intake(m)) for m in [*good[:2], bad, *good[2:]]],
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], Exception)
    assert "one by one" in caplog.text  # the batch fell back to one unit at a time
    stored = [o for n, o in enumerate(outcomes) if n != 2]
    assert all(not isinstance(o, BaseException) and o.created for o in stored)
    assert len({o.contact_id for o in stored if not isinstance(o, BaseException)}) == 5


async def test_hand_built_payloads_are_the_pydantic_contract(
    factory: Factory, runtime: Runtime
) -> None:
    ws, inbox, _ = await _prepare(factory)
    since = await _last_event_id(runtime)
    await asyncio.gather(*[runtime.writer.submit(Intake(m)) for m in _batch(ws, inbox)])
    async with runtime.read_sessions() as session:
        rows = (await session.execute(
            select(OutboxEvent.type, OutboxEvent.payload)
            .where(OutboxEvent.workspace_id == ws.id, OutboxEvent.id > since)
        )).all()
    models: dict[str, Any] = {
        "message.created": MessageCreated,
        "conversation.created": ConversationEvent,
        "conversation.status_changed": ConversationEvent,
    }
    assert {t for t, _ in rows} == {*models, "contact.created"}
    for type_, payload in rows:
        if type_ == "contact.created":
            again = {"contact": ContactOut.model_validate(payload["contact"])
                     .model_dump(mode="json"), "changes": payload["changes"]}
        else:
            again = models[type_].model_validate(payload).model_dump(mode="json")
        # The same values, and (where the database keeps it: PostgreSQL's jsonb sorts
        # keys its own way) the same order: what pydantic would have written.
        assert again == payload, type_
        if runtime.is_sqlite:
            assert list(again) == list(payload)
            for part in ("conversation", "message", "contact"):
                if part in payload:
                    assert list(payload[part]) == list(again[part])


@pytest.mark.parametrize("size", [1, 2, 3, 33, 70])
async def test_batches_of_any_size(factory: Factory, runtime: Runtime, size: int) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    batch = [InboundMessage(workspace_id=ws.id, inbox_id=inbox, external_id=f"s-{n}",
                            contact=_claim(f"c-{n % 7}"), content="x") for n in range(size)]

    def run() -> list[Any]:
        with runtime.sync_engine.connect() as conn, conn.begin():
            return ingest_many(conn, batch)

    results = await asyncio.to_thread(run)
    assert len(results) == size and all(r.created for r in results)
    assert len({r.message_id for r in results}) == size
    assert len({r.conversation_id for r in results}) == min(size, 7)
    again = await asyncio.to_thread(run)
    assert [(r.message_id, r.created) for r in again] == [(r.message_id, False) for r in results]


def test_iso_times_are_written_as_pydantic_writes_them() -> None:
    from datetime import UTC, datetime

    from frontdesk.conversations.intake import _iso

    for moment in (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                   datetime(2024, 1, 2, 3, 4, 5, 100000, tzinfo=UTC),
                   datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)):
        out = ConversationOut(id=1, inbox_id=1, contact_id=1, status="open", priority="none",
                              assignee_id=None, team_id=None, subject=None, custom_fields={},
                              snoozed_until=None, first_response_at=None,
                              last_activity_at=moment, created_at=moment)
        assert _iso(moment) == out.model_dump(mode="json")["created_at"]
    assert MessageOut  # the message's times go through the same function


async def test_two_writers_storing_one_returning_customer_at_once_open_one_conversation(
    factory: Factory, runtime: Runtime,
) -> None:
    """Two server processes each have their own writer. Both take a message of the same
    returning customer (whose earlier conversation is resolved) at the same moment; the
    customer must end up with one new open conversation, not one per process."""
    from sqlalchemy import func

    if runtime.is_sqlite:
        pytest.skip("SQLite is written by one server process; several need PostgreSQL")

    from frontdesk.conversations.models import Conversation
    from frontdesk.core.writer import GroupCommitWriter

    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    customers = 12
    for n in range(customers):
        ids = await factory.incoming(ws, inbox, external_id=f"old-{n}", identifier=f"back-{n}")
        await factory.set_status(ws, ids["conversation_id"], "resolved")
    other = GroupCommitWriter(runtime.sync_engine)  # the second process's writer
    await other.start()
    try:
        await asyncio.gather(*[
            writer.submit(Intake(InboundMessage(
                workspace_id=ws.id, inbox_id=inbox, external_id=f"new-{n}-{side}",
                contact=_claim(f"back-{n}"), content="I am back")))
            for n in range(customers) for side, writer in (("a", runtime.writer), ("b", other))
        ])
    finally:
        await other.stop()
    with runtime.sync_engine.connect() as conn:
        open_per_contact = conn.execute(
            select(Conversation.contact_id, func.count())
            .where(Conversation.workspace_id == ws.id, Conversation.status == "open")
            .group_by(Conversation.contact_id)).all()
    assert len(open_per_contact) == customers
    assert all(count == 1 for _, count in open_per_contact)


def _automatic_batch(ws: Workspace, inbox: int) -> list[InboundMessage]:
    def message(external_id: str, claim: ContactClaim, automatic: bool) -> InboundMessage:
        return InboundMessage(workspace_id=ws.id, inbox_id=inbox, external_id=external_id,
                              contact=claim, content=f"text of {external_id}",
                              automatic=automatic)

    return [
        message("a1", _claim("known-pending"), True),    # joins, changes nothing
        message("a2", _claim("known-open"), True),       # joins, changes nothing
        message("a3", _claim("known-open"), False),      # the customer: continues as usual
        message("a4", _claim("monitor-1"), True),        # opens a conversation: automatic
        message("a5", _claim("monitor-1"), True),        # ...joins it, still automatic
        message("a6", _claim("monitor-2"), True),        # opens one: automatic
        message("a7", _claim("monitor-2"), False),       # a person writes in it: cleared
        message("a8", _claim("known-pending"), False),   # the customer: reopens it
    ]


async def test_automatic_messages_change_nothing_they_join_and_flag_what_they_open(
    factory: Factory, runtime: Runtime
) -> None:
    one_ws, one_inbox, _ = await _prepare(factory)
    ws, inbox, conversations = await _prepare(factory)
    columns = (Conversation.status, Conversation.waiting_since, Conversation.last_activity_at,
               Conversation.last_incoming_at, Conversation.automatic, Conversation.updated_at)

    async def state(conversation_id: int) -> tuple[Any, ...]:
        async with runtime.read_sessions() as session:
            return tuple((await session.execute(select(*columns).where(
                Conversation.id == conversation_id))).one())

    def run(batch: list[InboundMessage]) -> list[Any]:
        with runtime.sync_engine.connect() as conn, conn.begin():
            return ingest_many(conn, batch)

    pending_before = await state(conversations["pending"])
    since = await _last_event_id(runtime)
    # The first two alone: only `updated_at` moves.
    first = await asyncio.to_thread(run, _automatic_batch(ws, inbox)[:2])
    pending_after = await state(conversations["pending"])
    assert pending_after[:5] == pending_before[:5] and pending_after[5] > pending_before[5]
    assert pending_before[0] == "pending" and pending_before[4] is False
    rest = await asyncio.to_thread(run, _automatic_batch(ws, inbox)[2:])
    results = [*first, *rest]
    assert (await state(conversations["pending"]))[0] == "open"  # a8, the customer
    monitor_1, monitor_2 = results[3].conversation_id, results[5].conversation_id
    assert results[4].conversation_id == monitor_1 and results[6].conversation_id == monitor_2
    assert (await state(monitor_1))[4] is True and (await state(monitor_2))[4] is False
    new_one = await state(monitor_1)
    assert new_one[0] == "open" and new_one[1] is not None  # still work, waiting

    # The same as taking them one by one, events and payloads alike.
    def one_by_one() -> list[Any]:
        with runtime.sync_engine.connect() as conn, conn.begin():
            return [ingest_inbound(conn, m) for m in _automatic_batch(one_ws, one_inbox)]

    one = await asyncio.to_thread(one_by_one)
    assert await _outcome(runtime, ws, results, since) == \
        await _outcome(runtime, one_ws, one, since)
    _, events = await _outcome(runtime, ws, results, since)
    flags = [e["conversation"]["automatic"] for t, e in events if t == "message.created"]
    assert flags == [False, False, False, True, True, True, False, False]
