"""Private events (core.events.PRIVATE_EVENTS: one agent's read state) reach that agent's
own connections only, through Redis as well as within one process."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from frontdesk.core.realtime import RealtimeHub, Subscription


def _read_event(user_id: Any, conversation_id: int = 7) -> dict[str, Any]:
    return {"id": 1, "type": "conversation.read", "created_at": "2026-12-06T00:00:00Z",
            "data": {"conversation": {"id": conversation_id}, "user_id": user_id,
                     "unread": False, "last_read_message_id": 3}}


def _drain(sub: Subscription) -> list[dict[str, Any]]:
    got = []
    while not sub.queue.empty():
        event = sub.queue.get_nowait()
        assert event is not None
        got.append(event)
    return got


@pytest.mark.parametrize("redis", [False, True], ids=["embedded", "redis"])
async def test_a_read_event_reaches_only_the_connections_of_the_user_it_names(
    redis: bool,
) -> None:
    hub = RealtimeHub("redis://127.0.0.1:6379/0" if redis else None,
                      prefix=f"test-{uuid.uuid4().hex[:8]}")
    await hub.start()
    try:
        anna_tab, anna_phone = hub.subscribe(1, user_id=10), hub.subscribe(1, user_id=10)
        omar, api_client = hub.subscribe(1, user_id=11), hub.subscribe(1)
        elsewhere = hub.subscribe(2, user_id=10)  # the same person in another workspace
        public = {"id": 2, "type": "message.created", "created_at": "2026-12-06T00:00:00Z",
                  "data": {"conversation": {"id": 7}}}
        await hub.publish_many([(1, _read_event(10)), (1, public),
                                (1, _read_event(None)), (1, _read_event("10"))])
        for _ in range(100):  # over Redis the events come back asynchronously
            if anna_tab.queue.qsize() >= 2 and omar.queue.qsize() >= 1:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # anything else would have arrived by now

        for mine in (anna_tab, anna_phone):
            assert [e["type"] for e in _drain(mine)] == ["conversation.read", "message.created"]
        for other in (omar, api_client):
            assert [e["type"] for e in _drain(other)] == ["message.created"]
        assert _drain(elsewhere) == []
    finally:
        await hub.stop()
