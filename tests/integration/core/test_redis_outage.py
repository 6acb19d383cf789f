"""Redis carries the live view, not the record: while it is down, intake and dispatch go
on (webhooks and every durable listener with them); when it is back, agents who may have
missed events are told to reconnect and resync."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.core.test_realtime import is_event
from tests.processes import (
    Cluster,
    RealtimeClient,
    RedisServer,
    create_api_inbox,
    eventually,
    json_of,
    outbox_state,
    push_message,
)

pytestmark = pytest.mark.slow

CLOSE_MISSED_EVENTS = 1012


async def test_a_redis_outage_stops_neither_intake_nor_dispatch_and_agents_resync_after(
    make_cluster: Callable[[str], Cluster], tmp_path: Path,
) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server program to run a Redis of its own")
    redis = RedisServer(tmp_path).start()
    try:
        cluster = make_cluster("sqlite")
        server = cluster.start_server(redis=True, FRONTDESK_REDIS_URL=redis.url)
        tenant = await cluster.tenant()
        server.ready()
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
            inbox = await create_api_inbox(client, server, tenant)
            async with RealtimeClient(server, tenant.token) as agent:
                before = json_of(await push_message(client, server, tenant, inbox))
                await agent.wait_for(is_event("message.created", message=before["message_id"]),
                                     what="an event through the healthy Redis")

                redis.kill()
                during = await push_message(client, server, tenant, inbox)
                assert during.status_code == 201, during.text
                await eventually(
                    lambda: outbox_state(cluster.database_url, tenant.workspace_id),
                    lambda state: state["delivered"] == state["events"], timeout=10,
                    what="the events committed during the outage dispatched all the same",
                    explain=cluster.explain)
                assert "real-time push of" in server.log()

                redis.start()  # same port: the server re-subscribes by itself
                assert await agent.wait_closed(timeout=15) == CLOSE_MISSED_EVENTS
            missed = during.json()["message_id"]
            assert not any(is_event("message.created", message=missed)(m)
                           for m in agent.messages)

            async with RealtimeClient(server, tenant.token) as again:
                after = json_of(await push_message(client, server, tenant, inbox))
                await again.wait_for(is_event("message.created", message=after["message_id"]),
                                     what="events flowing again after the reconnect")
    finally:
        redis.kill()
