"""Intake: every channel's inbound customer message becomes a stored message here.

Channel adapters normalise what arrives into an `InboundMessage` and submit an `Intake` of
it to the group-commit writer (core.writer), which runs all the intakes of a batch with
one `ingest_many` call inside the batch transaction. The channel's external id is the
idempotency key: a unique index on (inbox, external id) makes a repeat store nothing and
answer with the first delivery's ids.

This is the hottest path of the system (thousands of messages a second), so a batch costs
a few statements whatever its size (the repeat check, the senders' identities, their open
conversations, the messages, the events: one each), all compiled once and run on the raw
cursor, and the event payloads are built as plain dicts rather than through the pydantic
models. Those dicts are the webhook contract: they must equal `MessageCreated`,
`ConversationEvent` and `ContactEvent` dumped in JSON mode, key for key
(tests/conversations/test_intake_batch.py holds them to it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import any_, bindparam, false, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ColumnElement, Select, operators
from sqlalchemy.sql.elements import UnaryExpression

from frontdesk.contacts.identities import (
    ContactClaim,
    ResolvedContact,
    resolve_contacts_sync,
)
from frontdesk.contacts.models import Contact
from frontdesk.conversations.models import (
    CONTINUABLE_STATUSES,
    Conversation,
    ConversationStatus,
    ConversationTag,
    DeliveryStatus,
    Message,
    MessageType,
    Priority,
    SenderType,
    Tag,
)
from frontdesk.core.events import EventType, OutboxEvent
from frontdesk.core.writer import InsertRows, MatchAny, Prepared, insert_later, pipelined
from frontdesk.db.base import utcnow


@dataclass
class InboundMessage:
    workspace_id: int
    inbox_id: int
    external_id: str
    contact: ContactClaim
    content: str
    content_html: str | None = None
    subject: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    # For a channel that threads by itself (e-mail: by Message-ID references): continue
    # exactly this conversation of the inbox (the channel checked it), or open a new one
    # even when the sender has an open conversation.
    conversation_id: int | None = None
    new_conversation: bool = False
    # Written by a machine, not a person (the channel decides: e-mail's out-of-office
    # replies, bounces, alerts). It is stored in the conversation it joins but changes
    # nothing a person's message would: no reopening, no new waiting time, no unread, no
    # place at the top of the activity sort. A conversation it opens is flagged automatic.
    automatic: bool = False


@dataclass(frozen=True)
class IntakeResult:
    message_id: int
    conversation_id: int
    contact_id: int
    created: bool  # False: a repeat of an external id already stored


# --------------------------------------------------------------------------- statements

# The columns of ConversationOut, in its order (the event payload follows it).
_CONVERSATION_FIELDS = ("id", "inbox_id", "contact_id", "status", "priority", "assignee_id",
                        "team_id", "subject", "custom_fields", "snoozed_until",
                        "first_response_at", "last_activity_at", "created_at", "waiting_since",
                        "automatic")


def _workspace_key(_dialect: Dialect) -> ColumnElement[Any]:
    """The open-conversation lookup's workspace condition, written `+workspace_id` (a no-op)
    so that no index on the workspace can serve it: the contact's own index finds the row
    at once. Without statistics, SQLite walked the workspace's activity index to skip a
    sort, and PostgreSQL (a new database) chose the workspace's index of updates and read
    every conversation of the workspace for each sender."""
    column: ColumnElement[Any] = Conversation.__table__.c.workspace_id
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def _conversations(dialect: Dialect) -> Select[Any]:
    """Conversations with their tags, as the payloads need them."""
    # The tags come along as one JSON array (the payload carries them), saving a statement.
    aggregate = func.json_agg if dialect.name == "postgresql" else func.json_group_array
    tags = (
        select(aggregate(Tag.name))
        .join(ConversationTag, ConversationTag.tag_id == Tag.id)
        .where(ConversationTag.conversation_id == Conversation.id)
        .scalar_subquery()
    )
    return select(*[Conversation.__table__.c[name] for name in _CONVERSATION_FIELDS], tags)


def _continuable(dialect: Dialect) -> Select[Any]:
    """The conversations a new message may continue, with their tags."""
    # Literals, not an expanding list: the statement is compiled once.
    return _conversations(dialect).where(
        Conversation.status.in_([literal(s) for s in CONTINUABLE_STATUSES]))


_STORED = MatchAny(
    lambda _dialect: select(Message.inbox_id, Message.external_id, Message.id,
                            Message.conversation_id, Message.sender_contact_id),
    lambda _dialect: (Message.inbox_id, Message.external_id),
)


_OPEN_CONVERSATIONS = MatchAny(
    _continuable,
    lambda dialect: (_workspace_key(dialect), Conversation.contact_id, Conversation.inbox_id),
)


_CONVERSATIONS_BY_ID = MatchAny(
    _conversations, lambda _dialect: (Conversation.__table__.c.id,),
)


_INSERT_MESSAGES = InsertRows(
    Message.__table__,
    ("workspace_id", "conversation_id", "inbox_id", "message_type", "sender_type",
     "sender_contact_id", "content", "content_html", "attachments", "external_id",
     "delivery_status", "created_at"),
    returning=(Message.inbox_id, Message.external_id, Message.id),
)


# A customer's message: the customer waits from now on, unless they were waiting already;
# a person wrote, so the conversation is no longer one only machines wrote in.
_WAITING_SINCE = func.coalesce(Conversation.waiting_since,
                               bindparam("now", type_=Conversation.waiting_since.type))
_TOUCH_CONVERSATION = Prepared(
    update(Conversation)
    .where(Conversation.id == bindparam("conversation_id"))
    .values(last_activity_at=bindparam("now"), updated_at=bindparam("now"),
            last_incoming_at=bindparam("now"), waiting_since=_WAITING_SINCE,
            automatic=false())
)
_TOUCH_CONVERSATIONS = Prepared(  # PostgreSQL: a batch's conversations in one statement
    update(Conversation)
    .where(Conversation.id == any_(bindparam("ids", type_=ARRAY(Conversation.id.type))))
    .values(last_activity_at=bindparam("now"), updated_at=bindparam("now"),
            last_incoming_at=bindparam("now"), waiting_since=_WAITING_SINCE,
            automatic=false())
)
_REOPEN_CONVERSATION = Prepared(
    update(Conversation)
    .where(Conversation.id == bindparam("conversation_id"))
    .values(last_activity_at=bindparam("now"), updated_at=bindparam("now"),
            status=ConversationStatus.OPEN.value, snoozed_until=None,
            last_incoming_at=bindparam("now"), waiting_since=_WAITING_SINCE,
            automatic=false())
)
# Automatic mail joining a conversation: only `updated_at` moves (the inbox's counts and
# lists notice a change); status, waiting time, activity and unread state stay.
_NOTE_AUTOMATIC = Prepared(
    update(Conversation)
    .where(Conversation.id == bindparam("conversation_id"))
    .values(updated_at=bindparam("now"))
)
_NEW_CONVERSATION_COLUMNS = ("workspace_id", "inbox_id", "contact_id", "status", "priority",
                             "subject", "custom_fields", "last_activity_at", "created_at",
                             "updated_at", "waiting_since", "last_incoming_at", "automatic")
_INSERT_CONVERSATION = Prepared(
    insert(Conversation)
    .values({c: bindparam(c) for c in _NEW_CONVERSATION_COLUMNS})
    .returning(Conversation.id)
)
# PostgreSQL only (see ingest_many, step 3): the returning senders' rows, in id order.
# Compiled once like the rest: built and run through SQLAlchemy, with an expanding IN list,
# this one statement took a seventh of the writer thread's time.
_LOCK_CONTACTS = Prepared(
    select(Contact.id)
    .where(Contact.id == any_(bindparam("ids", type_=ARRAY(Contact.id.type))))
    .order_by(Contact.id)
    .with_for_update()
)
_INSERT_EVENTS = InsertRows(OutboxEvent.__table__, (
    "workspace_id", "type", "payload", "created_at", "available_at", "attempts"))


# ------------------------------------------------------------------------------ payloads


def _iso(value: datetime | None) -> str | None:
    """An aware UTC datetime as pydantic writes it in JSON mode (…T10:20:30.123456Z)."""
    if value is None:
        return None
    # isoformat() leaves out a zero fraction and writes six digits otherwise, as pydantic
    # does; only the zone differs ("+00:00" there, "Z" here). Several times faster than
    # strftime, and it runs a handful of times per message.
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _conversation_payload(values: dict[str, Any], tags: list[str]) -> dict[str, Any]:
    """ConversationOut in JSON mode."""
    return {
        "id": values["id"], "inbox_id": values["inbox_id"], "contact_id": values["contact_id"],
        "status": values["status"], "priority": values["priority"],
        "assignee_id": values["assignee_id"], "team_id": values["team_id"],
        "subject": values["subject"], "tags": tags, "custom_fields": values["custom_fields"],
        "snoozed_until": _iso(values["snoozed_until"]),
        "first_response_at": _iso(values["first_response_at"]),
        "last_activity_at": _iso(values["last_activity_at"]),
        "created_at": _iso(values["created_at"]),
        "merged_into_id": None,  # a merged conversation is closed: intake never continues one
        "waiting_since": _iso(values["waiting_since"]),
        "automatic": values["automatic"],
    }


def _message_row(inbound: InboundMessage, conversation_id: int, contact_id: int,
                 now: datetime) -> dict[str, Any]:
    return {
        "workspace_id": inbound.workspace_id, "conversation_id": conversation_id,
        "inbox_id": inbound.inbox_id, "message_type": MessageType.INCOMING.value,
        "sender_type": SenderType.CONTACT.value, "sender_contact_id": contact_id,
        "content": inbound.content, "content_html": inbound.content_html,
        "attachments": inbound.attachments, "external_id": inbound.external_id,
        "delivery_status": DeliveryStatus.RECEIVED.value, "created_at": now,
    }


def _contact_created(contact: ResolvedContact, now: datetime) -> dict[str, Any]:
    """ContactEvent(contact=ContactOut(...)) in JSON mode."""
    return {
        "contact": {
            "id": contact.id, "name": contact.name, "email": contact.email,
            "phone": contact.phone, "company_id": None, "custom_attributes": {},
            "created_at": _iso(now), "updated_at": _iso(now),
        },
        "changes": {},
    }


def _message_created(inbound: InboundMessage, message_id: int, contact_id: int,
                     conversation: dict[str, Any], now: datetime) -> dict[str, Any]:
    """MessageCreated(message=MessageOut(...), conversation=ConversationOut(...)) in JSON mode."""
    return {
        "message": {
            "id": message_id, "conversation_id": conversation["id"],
            "inbox_id": inbound.inbox_id, "message_type": MessageType.INCOMING.value,
            "sender_type": SenderType.CONTACT.value, "sender_contact_id": contact_id,
            "sender_user_id": None, "content": inbound.content,
            "content_html": inbound.content_html, "attachments": inbound.attachments,
            "external_id": inbound.external_id,
            "delivery_status": DeliveryStatus.RECEIVED.value, "delivery_error": None,
            "created_at": _iso(now),
        },
        "conversation": conversation,
    }


def _record(conn: Connection, workspace_id: int, type_: EventType, payload: dict[str, Any],
            now: datetime) -> None:
    """The outbox row of an event; inserted with the rest of the batch's at its commit."""
    insert_later(conn, _INSERT_EVENTS, {
        "workspace_id": workspace_id, "type": type_.value, "payload": payload,
        "created_at": now, "available_at": now, "attempts": 0,
    })


def _tags(raw: Any) -> list[str]:
    if raw is None:
        return []
    names = json.loads(raw) if isinstance(raw, str | bytes) else raw
    return sorted(name for name in names if name is not None)


# -------------------------------------------------------------------------------- intake


class Intake:
    """The unit of work the channels submit to the writer: one inbound message, which
    the writer runs together with the rest of its batch (`ingest_many`) when it can."""

    __slots__ = ("inbound", "key")

    def __init__(self, inbound: InboundMessage) -> None:
        self.inbound = inbound
        # With several writer connections (PostgreSQL) one sender's messages all go through
        # the same one, in order: two open batches never fight over its rows.
        identities = inbound.contact.identities()
        self.key = (inbound.workspace_id, identities[0]) if identities else None

    def __call__(self, conn: Connection) -> IntakeResult:
        return ingest_inbound(conn, self.inbound)

    @staticmethod
    def together(conn: Connection, units: list[Intake]) -> list[IntakeResult]:
        return ingest_many(conn, [unit.inbound for unit in units])


def _lock_contacts(conn: Connection, contact_ids: list[int]) -> None:
    if contact_ids:
        _LOCK_CONTACTS.execute(conn, {"ids": contact_ids})


def ingest_inbound(conn: Connection, inbound: InboundMessage) -> IntakeResult:
    """Store one inbound message: `ingest_many` for a batch of one. The writer runs a unit
    alone this way when the batch it came in could not run together."""
    return ingest_many(conn, [inbound])[0]


def ingest_many(conn: Connection, inbounds: Sequence[InboundMessage]) -> list[IntakeResult]:
    """Store a batch of inbound messages with the outcome of storing them one after the
    other: results, rows and events alike. The repeat check, the senders' identities,
    their open conversations, the conversations' new activity, the messages and the
    events are one statement each for the whole batch (on SQLite, one per 32 or 64
    messages). Only new contacts and new conversations are inserted one at a time: their
    ids are needed at once."""
    now = utcnow()
    results: list[IntakeResult | None] = [None] * len(inbounds)

    # 1. Repeats: stored before, or sent twice within this batch.
    keys = list(dict.fromkeys((m.inbox_id, m.external_id) for m in inbounds))
    stored: dict[tuple[int, str], tuple[int, int, int]] = {}
    for inbox_id, external_id, message_id, conversation_id, contact_id in _STORED.rows(
            conn, keys):
        stored[(inbox_id, external_id)] = (message_id, conversation_id, contact_id or 0)
    todo: list[int] = []
    first: dict[tuple[int, str], int] = {}
    again: list[tuple[int, int]] = []
    for index, inbound in enumerate(inbounds):
        key = (inbound.inbox_id, inbound.external_id)
        if key in stored:
            results[index] = IntakeResult(*stored[key], created=False)
        elif key in first:
            again.append((index, first[key]))
        else:
            first[key] = index
            todo.append(index)

    # 2. Senders, in order (a contact created for one message is found by the next).
    contacts = resolve_contacts_sync(
        conn, [(inbounds[i].workspace_id, inbounds[i].contact) for i in todo], now)

    # 3. Their open conversations, for the senders known before this batch. On PostgreSQL
    # another server process may be storing a message of the same returning customer right
    # now; both would find no open conversation and open one each. Locking the contacts
    # (in id order, so two batches cannot wait on each other in a circle) makes the later
    # batch wait for the earlier one's commit and then find its conversation.
    pairs = list(dict.fromkeys(
        (inbounds[i].workspace_id, contact.id, inbounds[i].inbox_id)
        for i, contact in zip(todo, contacts, strict=True)
        if not contact.created and inbounds[i].conversation_id is None
        and not inbounds[i].new_conversation))
    with pipelined(conn):  # the lock travels with the lookup: one round trip
        if conn.dialect.name == "postgresql":
            _lock_contacts(conn, sorted({c.id for c in contacts if not c.created}))
        open_conversations = _OPEN_CONVERSATIONS.rows(conn, pairs)
    found: dict[tuple[int, int], tuple[Any, ...]] = {}
    for candidate in open_conversations:
        pair = (candidate[2], candidate[1])  # (contact_id, inbox_id)
        best = found.get(pair)
        # The most recently active one, as `ORDER BY last_activity_at DESC` would.
        if best is None or (candidate[11], candidate[0]) > (best[11], best[0]):
            found[pair] = candidate
    # The conversations a channel named (any status: a reply reopens a resolved one),
    # keyed (0, id): no contact has id 0.
    named = list(dict.fromkeys((inbounds[i].conversation_id,) for i in todo
                               if inbounds[i].conversation_id is not None))
    for candidate in _CONVERSATIONS_BY_ID.rows(conn, named):
        found[(0, candidate[0])] = candidate

    # (conversation dict for the payload, events to record before the message's)
    current: dict[tuple[int, int], dict[str, Any]] = {}
    touched: list[dict[str, Any]] = []
    reopened: list[dict[str, Any]] = []
    noted: list[dict[str, Any]] = []  # joined by automatic mail only
    staged: list[tuple[int, ResolvedContact, dict[str, Any], list[tuple[EventType, Any]]]] = []
    for index, contact in zip(todo, contacts, strict=True):
        inbound = inbounds[index]
        ws = inbound.workspace_id
        before: list[tuple[EventType, Any]] = []
        if contact.created:
            before.append((EventType.CONTACT_CREATED, _contact_created(contact, now)))
        pair = ((0, inbound.conversation_id) if inbound.conversation_id is not None
                else (contact.id, inbound.inbox_id))
        conversation = None if inbound.new_conversation else current.get(pair)
        if conversation is None:
            row = None if inbound.new_conversation else found.get(pair)
            if row is None:
                values: dict[str, Any] = {
                    "workspace_id": ws, "inbox_id": inbound.inbox_id, "contact_id": contact.id,
                    "status": ConversationStatus.OPEN.value, "priority": Priority.NONE.value,
                    "assignee_id": None, "team_id": None, "subject": inbound.subject,
                    "custom_fields": {}, "snoozed_until": None, "first_response_at": None,
                    "last_activity_at": now, "created_at": now, "updated_at": now,
                    "waiting_since": now, "last_incoming_at": now,
                    "automatic": inbound.automatic,
                }
                values["id"] = _INSERT_CONVERSATION.scalar(conn, values)
                conversation = _conversation_payload(values, [])
                before.append((EventType.CONVERSATION_CREATED, {
                    "conversation": conversation, "changes": {}, "actor_user_id": None}))
            else:
                values = dict(zip(_CONVERSATION_FIELDS, row, strict=False))
                old_status = values["status"]
                params = {"conversation_id": values["id"], "now": now}
                if inbound.automatic:
                    # Not remembered in `current`: the row is as it was, so a person's
                    # message later in the batch continues it as if this were not there.
                    noted.append(params)
                    staged.append((index, contact, _conversation_payload(
                        values, _tags(row[-1])), before))
                    continue
                values["last_activity_at"] = now
                values["waiting_since"] = values["waiting_since"] or now
                values["automatic"] = False
                if old_status != ConversationStatus.OPEN.value:
                    reopened.append(params)
                    values.update(status=ConversationStatus.OPEN.value, snoozed_until=None)
                    conversation = _conversation_payload(values, _tags(row[-1]))
                    before.append((EventType.CONVERSATION_STATUS_CHANGED, {
                        "conversation": conversation,
                        "changes": {"status": [old_status, ConversationStatus.OPEN.value]},
                        "actor_user_id": None,
                    }))
                else:
                    touched.append(params)
                    conversation = _conversation_payload(values, _tags(row[-1]))
            current[pair] = conversation
        elif conversation["automatic"] and not inbound.automatic:
            # A person writes in a conversation a machine opened earlier in this batch.
            touched.append({"conversation_id": conversation["id"], "now": now})
            conversation = current[pair] = {**conversation, "automatic": False}
        staged.append((index, contact, conversation, before))
    # The conversations' new activity travels with the messages' INSERT: one round trip.
    with pipelined(conn):
        if touched and conn.dialect.name == "postgresql":
            _TOUCH_CONVERSATIONS.execute(conn, {
                "ids": [t["conversation_id"] for t in touched], "now": now})
        else:
            _TOUCH_CONVERSATION.executemany(conn, touched)
        _REOPEN_CONVERSATION.executemany(conn, reopened)
        _NOTE_AUTOMATIC.executemany(conn, noted)

        # 4. The messages, then every event in the order running them one by one would give.
        message_ids = {(inbox_id, external_id): message_id for inbox_id, external_id, message_id
                       in _INSERT_MESSAGES.run(conn, [
                           _message_row(inbounds[index], conversation["id"], contact.id, now)
                           for index, contact, conversation, _ in staged])}
    for index, contact, conversation, before in staged:
        inbound = inbounds[index]
        ws = inbound.workspace_id
        for type_, payload in before:
            _record(conn, ws, type_, payload, now)
        message_id = message_ids[(inbound.inbox_id, inbound.external_id)]
        _record(conn, ws, EventType.MESSAGE_CREATED,
                _message_created(inbound, message_id, contact.id, conversation, now), now)
        results[index] = IntakeResult(message_id, conversation["id"], contact.id, created=True)

    for index, original in again:  # the same external id twice in one batch
        done = results[original]
        assert done is not None
        results[index] = IntakeResult(done.message_id, done.conversation_id, done.contact_id,
                                      created=False)
    return [result for result in results if result is not None]
