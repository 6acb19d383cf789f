"""Delivery end to end: an event committed in Frontdesk reaches a real HTTP receiver,
signed; failures are retried with growing delays and show in the delivery log."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from frontdesk.core.dispatcher import DispatchedEvent
from frontdesk.core.events import OutboxEvent
from frontdesk.runtime import Runtime
from frontdesk.webhooks.delivery import (
    WebhookListener,
    WebhookSender,
    backoff_ceiling,
    full_jitter,
)
from frontdesk.webhooks.models import WebhookDelivery, WebhookSubscription
from frontdesk.webhooks.signing import verify_signature
from tests.factories import Factory, Workspace
from tests.webhooks.receiver import Receiver, Reply, eventually


async def subscribe(
    api: httpx.AsyncClient, ws: Workspace, url: str, events: list[str]
) -> dict[str, Any]:
    r = await api.post("/api/v1/webhooks", headers=ws.admin.headers,
                       json={"url": url, "events": events})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def deliveries(api: httpx.AsyncClient, ws: Workspace, webhook_id: int,
                     **params: Any) -> dict[str, Any]:
    r = await api.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=ws.admin.headers,
                      params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def settled(api: httpx.AsyncClient, ws: Workspace, webhook_id: int,
                  status: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait until `count` deliveries of the webhook have reached `status`."""
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        nonlocal found
        found = [d for d in (await deliveries(api, ws, webhook_id))["items"]
                 if d["status"] == status]
        return len(found) >= count

    await eventually(check, what=f"{count} {status} deliveries")
    return found


@pytest.fixture
def fast_retries(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry delays of 0.15 s, 0.3 s, 0.6 s... and exactly the ceiling (no jitter), so the
    growth can be seen on the receiver's clock."""
    monkeypatch.setattr(runtime.webhook_sender, "retry_base_seconds", 0.15)
    monkeypatch.setattr(runtime.webhook_sender, "jitter", lambda ceiling: ceiling)


async def test_an_event_is_posted_signed_with_the_subscription_secret(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver
) -> None:
    ws = await factory.workspace()
    hook = await subscribe(api, ws, receiver.url, ["message.created"])
    ids = await factory.conversation(ws, content="My order never arrived")

    (request,) = await receiver.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/hooks/frontdesk"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-frontdesk-event"] == "message.created"
    timestamp = request.headers["x-frontdesk-timestamp"]
    assert abs(int(timestamp) - datetime.now(UTC).timestamp()) < 60
    assert verify_signature(hook["secret"], timestamp, request.body,
                            request.headers["x-frontdesk-signature"])
    assert not verify_signature("whsec_wrong", timestamp, request.body,
                                request.headers["x-frontdesk-signature"])

    body = json.loads(request.body)
    assert body["type"] == "message.created"
    assert body["workspace_id"] == ws.id
    assert isinstance(body["id"], int)
    assert body["data"]["message"]["id"] == ids["message_id"]
    assert body["data"]["message"]["content"] == "My order never arrived"
    assert body["data"]["conversation"]["id"] == ids["conversation_id"]

    (delivery,) = await settled(api, ws, hook["id"], "succeeded")
    assert request.headers["x-frontdesk-delivery"] == str(delivery["id"])
    assert delivery["event_id"] == body["id"]
    assert delivery["webhook_id"] == hook["id"]
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200
    assert delivery["next_attempt_at"] is None
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]


async def test_only_the_subscribed_events_are_sent(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver,
    second_receiver: Receiver,
) -> None:
    ws = await factory.workspace()
    contacts_only = await subscribe(api, ws, receiver.url, ["contact.created"])
    everything = await subscribe(api, ws, second_receiver.url, ["*"])
    await factory.conversation(ws)

    await settled(api, ws, everything["id"], "succeeded", count=3)
    await settled(api, ws, contacts_only["id"], "succeeded")
    await asyncio.sleep(0.2)  # anything else would have arrived by now
    assert [r.headers["x-frontdesk-event"] for r in receiver.requests] == ["contact.created"]
    got = {r.headers["x-frontdesk-event"] for r in second_receiver.requests}
    assert {"contact.created", "conversation.created", "message.created"} <= got


async def test_other_workspaces_events_are_not_sent(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver
) -> None:
    mine, theirs = await factory.workspace(), await factory.workspace()
    await subscribe(api, mine, receiver.url, ["*"])
    await factory.conversation(theirs)
    await factory.conversation(mine)
    await receiver.wait_for(3)
    await asyncio.sleep(0.2)
    assert {json.loads(r.body)["workspace_id"] for r in receiver.requests} == {mine.id}


async def test_an_agents_read_state_is_never_sent_even_to_a_subscription_to_everything(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver
) -> None:
    ws = await factory.workspace()
    await subscribe(api, ws, receiver.url, ["*"])
    r = await api.post("/api/v1/webhooks", headers=ws.admin.headers,
                       json={"url": receiver.url, "events": ["conversation.read"]})
    assert r.status_code == 422, r.text  # not an event webhooks can name
    ids = await factory.conversation(ws)
    await receiver.wait_for(3)  # contact.created, conversation.created, message.created

    r = await api.post(f"/api/v1/conversations/{ids['conversation_id']}/read",
                       headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    r = await api.post(f"/api/v1/conversations/{ids['conversation_id']}/status",
                       headers=ws.admin.headers, json={"status": "resolved"})
    assert r.status_code == 200, r.text

    # The change after it arrives, and the read state did not come before it.
    await receiver.wait_for(4)
    await asyncio.sleep(0.2)
    sent = [r.headers["x-frontdesk-event"] for r in receiver.requests]
    assert "conversation.read" not in sent
    assert sent[-1] == "conversation.status_changed"


async def test_an_inactive_webhook_gets_nothing(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver
) -> None:
    ws = await factory.workspace()
    hook = await subscribe(api, ws, receiver.url, ["*"])
    await api.patch(f"/api/v1/webhooks/{hook['id']}", headers=ws.admin.headers,
                    json={"active": False})
    await factory.conversation(ws)
    await asyncio.sleep(0.5)
    assert receiver.requests == []
    assert (await deliveries(api, ws, hook["id"]))["items"] == []


async def test_a_failing_receiver_is_retried_with_growing_delays_until_it_answers(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver, fast_retries: None
) -> None:
    receiver.answer(Reply(500, body=b"database down"), Reply(503), Reply(500), then=Reply(200))
    ws = await factory.workspace()
    hook = await subscribe(api, ws, receiver.url, ["message.created"])
    await factory.conversation(ws)

    requests = await receiver.wait_for(4)
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]
    # Never sooner than scheduled (0.15 s, then 0.3 s, then 0.6 s): the waits grow.
    assert gaps[0] >= 0.15
    assert gaps[1] >= 0.3
    assert gaps[2] >= 0.6
    assert gaps[2] > gaps[0]
    assert len({r.headers["x-frontdesk-delivery"] for r in requests}) == 1  # the same delivery
    assert len({r.body for r in requests}) == 1

    (delivery,) = await settled(api, ws, hook["id"], "succeeded")
    assert delivery["attempts"] == 4
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 503, 500, 200]
    assert delivery["attempt_log"][0]["error"] == "HTTP 500: database down"
    assert delivery["last_status_code"] == 200
    assert delivery["last_error"] is None


async def test_after_the_last_attempt_the_delivery_is_failed_and_can_be_retried_by_hand(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver, runtime: Runtime,
    fast_retries: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime.webhook_sender, "max_attempts", 3)
    receiver.answer(then=Reply(500))
    ws = await factory.workspace()
    hook = await subscribe(api, ws, receiver.url, ["message.created"])
    await factory.conversation(ws)

    (delivery,) = await settled(api, ws, hook["id"], "failed")
    assert delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 500, 500]
    assert delivery["next_attempt_at"] is None
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 3  # given up: nothing more

    receiver.answer(then=Reply(204))
    r = await api.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/retry",
                       headers=ws.admin.headers)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    (done,) = await settled(api, ws, hook["id"], "succeeded")
    assert done["attempts"] == 4
    assert done["last_status_code"] == 204


async def test_a_connection_refused_is_a_failed_attempt_that_is_retried(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver, fast_retries: None,
) -> None:
    url = receiver.url
    await receiver.stop()  # nothing listens there any more
    ws = await factory.workspace()
    hook = await subscribe(api, ws, url, ["message.created"])
    await factory.conversation(ws)

    async def retried() -> bool:
        items = (await deliveries(api, ws, hook["id"]))["items"]
        return bool(items) and items[0]["attempts"] >= 2

    await eventually(retried, what="a second attempt")
    (delivery,) = (await deliveries(api, ws, hook["id"]))["items"]
    assert delivery["last_status_code"] is None
    assert "ConnectError" in delivery["last_error"]
    # Stop retrying into the void for the rest of the suite.
    await api.patch(f"/api/v1/webhooks/{hook['id']}", headers=ws.admin.headers,
                    json={"active": False})


async def test_a_redirect_is_not_followed_and_names_its_target(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver, second_receiver: Receiver,
) -> None:
    receiver.answer(Reply(302, {"Location": second_receiver.url}))
    ws = await factory.workspace()
    hook = await subscribe(api, ws, receiver.url, ["message.created"])
    await factory.conversation(ws)

    async def attempted() -> bool:
        items = (await deliveries(api, ws, hook["id"]))["items"]
        return bool(items) and items[0]["last_status_code"] == 302

    await eventually(attempted, what="the redirected attempt")
    (delivery,) = (await deliveries(api, ws, hook["id"]))["items"]
    assert delivery["status"] == "pending"  # a failed attempt: retried later
    assert second_receiver.url in delivery["last_error"]
    assert "not followed" in delivery["last_error"]
    assert second_receiver.requests == []
    await api.patch(f"/api/v1/webhooks/{hook['id']}", headers=ws.admin.headers,
                    json={"active": False})


async def test_410_gone_deactivates_the_webhook(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver
) -> None:
    receiver.answer(then=Reply(410))
    ws = await factory.workspace()
    hook = await subscribe(api, ws, receiver.url, ["message.created"])
    await factory.conversation(ws)

    (delivery,) = await settled(api, ws, hook["id"], "failed")
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 410
    got = (await api.get(f"/api/v1/webhooks/{hook['id']}", headers=ws.admin.headers)).json()
    assert got["active"] is False
    assert "410" in got["disabled_reason"]
    await factory.conversation(ws)
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 1


async def test_dispatching_an_event_again_creates_no_second_delivery(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver, runtime: Runtime
) -> None:
    ws = await factory.workspace()
    hook = await subscribe(api, ws, receiver.url, ["message.created"])
    await factory.conversation(ws)
    (delivery,) = await settled(api, ws, hook["id"], "succeeded")

    # What a worker that died after the listeners ran (before the commit was seen) does:
    # the event goes out again.
    async with runtime.sessions() as session:
        await session.execute(update(OutboxEvent).where(OutboxEvent.id == delivery["event_id"])
                              .values(dispatched_at=None))
        await session.commit()
    runtime.dispatcher.wake()

    async def redispatched() -> bool:
        async with runtime.read_sessions() as session:
            row = await session.get(OutboxEvent, delivery["event_id"])
            return row is not None and row.dispatched_at is not None

    await eventually(redispatched, what="the event to be dispatched again")
    await asyncio.sleep(0.3)
    assert len((await deliveries(api, ws, hook["id"]))["items"]) == 1
    assert len(receiver.requests) == 1


async def test_the_listener_inserts_one_delivery_per_subscription_and_event(
    factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.workspace()
    async with runtime.sessions() as session:
        session.add_all([
            WebhookSubscription(workspace_id=ws.id, url="http://127.0.0.1:9/a", events=["*"],
                                secret="s", active=False, description=""),  # never woken
            WebhookSubscription(workspace_id=ws.id, url="http://127.0.0.1:9/b",
                                events=["contact.created"], secret="s", active=False,
                                description=""),
        ])
        await session.flush()
        await session.execute(update(WebhookSubscription)
                              .where(WebhookSubscription.workspace_id == ws.id)
                              .values(active=True))
        events = [DispatchedEvent(10_000_000 + n, ws.id, type_, {"n": n}, datetime.now(UTC))
                  for n, type_ in enumerate(["contact.created", "message.created"])]
        listener = WebhookListener()
        await listener.handle(session, events)
        await listener.handle(session, events)  # at-least-once: the same batch again
        count = (await session.execute(
            select(func.count()).select_from(WebhookDelivery)
            .where(WebhookDelivery.workspace_id == ws.id)
        )).scalar_one()
        await session.rollback()  # keep these out of the running sender's way
    assert count == 3  # "*" gets both events, the contact.created one gets one


async def test_senders_side_by_side_send_each_delivery_once(
    factory: Factory, runtime: Runtime, receiver: Receiver
) -> None:
    # Several workers claim at once (PostgreSQL: SKIP LOCKED; SQLite: the write lock);
    # the app's own sender joins in too. No delivery may go out twice.
    ws = await factory.workspace()
    async with runtime.sessions() as session:
        session.add(WebhookSubscription(workspace_id=ws.id, url=receiver.url, events=["*"],
                                        secret="whsec_race", active=True, description=""))
        await session.flush()
        events = [DispatchedEvent(30_000_000 + ws.id * 100 + n, ws.id, "contact.created",
                                  {"n": n}, datetime.now(UTC)) for n in range(40)]
        await WebhookListener().handle(session, events)
        await session.commit()
    senders = [WebhookSender(runtime.sessions, runtime.read_sessions, allow_private=True,
                             concurrency=4) for _ in range(3)]
    await asyncio.gather(*(sender.send_due() for sender in senders for _ in range(3)))
    runtime.webhook_sender.wake()

    requests = await receiver.wait_for(40)
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 40
    assert len({r.headers["x-frontdesk-delivery"] for r in requests}) == 40


async def test_the_delivery_log_is_newest_first_and_cursor_paginated(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver
) -> None:
    ws = await factory.workspace()
    hook = await subscribe(api, ws, receiver.url, ["message.created"])
    inbox = await factory.inbox(ws)
    for n in range(3):
        await factory.incoming(ws, inbox, content=f"message {n}")
    await settled(api, ws, hook["id"], "succeeded", count=3)

    first = await deliveries(api, ws, hook["id"], limit=2)
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    second = await deliveries(api, ws, hook["id"], limit=2, cursor=first["next_cursor"])
    assert second["next_cursor"] is None
    ids = [d["id"] for d in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)
    contents = [d["payload"]["data"]["message"]["content"]
                for d in first["items"] + second["items"]]
    assert contents == ["message 2", "message 1", "message 0"]

    one = await api.get(f"/api/v1/webhooks/{hook['id']}/deliveries/{ids[0]}",
                        headers=ws.admin.headers)
    assert one.status_code == 200
    assert one.json()["id"] == ids[0]
    failed = await deliveries(api, ws, hook["id"], status="failed")
    assert failed["items"] == []
    bad = await api.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=ws.admin.headers,
                        params={"cursor": "nonsense"})
    assert bad.status_code == 422


async def test_deleting_a_webhook_deletes_its_delivery_log(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver, runtime: Runtime
) -> None:
    ws = await factory.workspace()
    hook = await subscribe(api, ws, receiver.url, ["message.created"])
    await factory.conversation(ws)
    await settled(api, ws, hook["id"], "succeeded")
    r = await api.delete(f"/api/v1/webhooks/{hook['id']}", headers=ws.admin.headers)
    assert r.status_code == 204
    async with runtime.read_sessions() as session:
        left = (await session.execute(
            select(func.count()).select_from(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == hook["id"])
        )).scalar_one()
    assert left == 0


async def test_a_delivery_of_another_webhook_answers_404(
    api: httpx.AsyncClient, factory: Factory, receiver: Receiver
) -> None:
    ws = await factory.workspace()
    hook = await subscribe(api, ws, receiver.url, ["message.created"])
    other = await subscribe(api, ws, receiver.url, ["contact.updated"])
    await factory.conversation(ws)
    (delivery,) = await settled(api, ws, hook["id"], "succeeded")
    path = f"/api/v1/webhooks/{other['id']}/deliveries/{delivery['id']}"
    assert (await api.get(path, headers=ws.admin.headers)).status_code == 404
    assert (await api.post(f"{path}/retry", headers=ws.admin.headers)).status_code == 404


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    ceilings = [backoff_ceiling(n, 15, 3600) for n in range(1, 12)]
    assert ceilings[:5] == [15, 30, 60, 120, 240]
    assert max(ceilings) == 3600
    assert ceilings[-1] == 3600
    # The default schedule (30 attempts) spans most of a day at its longest.
    total_hours = sum(backoff_ceiling(n, 15, 3600) for n in range(1, 30)) / 3600
    assert 20 < total_hours < 26
    assert all(0 <= full_jitter(60) <= 60 for _ in range(200))
