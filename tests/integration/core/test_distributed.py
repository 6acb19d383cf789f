"""Several processes on one PostgreSQL database and one Redis, as Frontdesk runs at scale:
events cross from the process that dispatched them to agents connected anywhere, and
intake stays idempotent when deliveries of one message race each other."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from tests.integration.conftest import need
from tests.integration.core.test_realtime import is_event
from tests.processes import (
    Cluster,
    RealtimeClient,
    RedisTap,
    Server,
    Tenant,
    create_api_inbox,
    json_of,
    push_message,
    sync_dsn,
)

pytestmark = pytest.mark.slow


@dataclass
class Deployment:
    cluster: Cluster
    dispatching: Server  # `serve` with its embedded dispatcher
    web: Server  # `serve` that only serves (FRONTDESK_EMBEDDED_WORKER=0)
    client: httpx.AsyncClient
    a: Tenant
    b: Tenant
    inbox_a: int


@pytest.fixture(scope="module")
async def deployment(make_module_cluster: Callable[[str], Cluster]
                     ) -> AsyncIterator[Deployment]:
    need("redis")
    cluster = make_module_cluster("postgresql")
    dispatching = cluster.start_server(redis=True)
    web = cluster.start_server(redis=True, embedded_worker=False)
    a, b = await cluster.tenant(), await cluster.tenant()
    dispatching.ready()
    web.ready()
    async with httpx.AsyncClient(trust_env=False, timeout=30,
                                 limits=httpx.Limits(max_connections=100)) as client:
        inbox_a = await create_api_inbox(client, web, a)
        yield Deployment(cluster, dispatching, web, client, a, b, inbox_a)


async def test_an_event_dispatched_by_one_server_reaches_agents_connected_to_another(
    deployment: Deployment,
) -> None:
    d = deployment
    marker = f"fan-out {uuid.uuid4().hex}"
    async with RealtimeClient(d.web, d.a.token) as on_web, \
            RealtimeClient(d.dispatching, d.a.token) as on_dispatching, \
            RealtimeClient(d.web, d.b.token) as other_workspace, \
            RedisTap("frontdesk:realtime") as default_channel:
        # Pushed into the dispatching server: only Redis can carry the event to `web`,
        # which dispatches nothing itself.
        ids = json_of(await push_message(d.client, d.dispatching, d.a, d.inbox_a,
                                         content=marker))
        for agent in (on_web, on_dispatching):
            await agent.wait_for(is_event("message.created", message=ids["message_id"]),
                                 what="the message pushed into the other server")
        # Pushed into `web`: committed there, dispatched by the other, heard on both.
        again = json_of(await push_message(d.client, d.web, d.a, d.inbox_a))
        for agent in (on_web, on_dispatching):
            await agent.wait_for(is_event("message.created", message=again["message_id"]),
                                 what="the message pushed into the web-only server")
        mark = json_of(await push_message(d.client, d.web, d.b,
                                          await create_api_inbox(d.client, d.web, d.b)))
        await other_workspace.wait_for(is_event("message.created", message=mark["message_id"]),
                                       what="workspace B's own event")
    assert {e["data"]["message"]["id"] for e in other_workspace.events
            if e["type"] == "message.created"} == {mark["message_id"]}
    # The channel is namespaced (FRONTDESK_REDIS_PREFIX): another installation on this
    # Redis, whose workspace ids mean other workspaces, hears nothing of ours.
    assert not any(marker in m for m in default_channel.messages)


async def test_dispatch_latency_across_processes_is_small(deployment: Deployment) -> None:
    """A message committed by the web-only server wakes the dispatcher of the other one
    at once (PostgreSQL NOTIFY), not at its next poll."""
    d = deployment
    latencies: list[float] = []
    async with RealtimeClient(d.web, d.a.token) as agent:
        for _ in range(10):
            started = time.monotonic()
            ids = json_of(await push_message(d.client, d.web, d.a, d.inbox_a))
            await agent.wait_for(is_event("message.created", message=ids["message_id"]),
                                 what="the event")
            latencies.append(time.monotonic() - started)
    print(f"push-to-agent latency across processes: median "
          f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    assert statistics.median(latencies) < 0.3, latencies


@pytest.mark.parametrize("servers", [1, 2])
async def test_concurrent_deliveries_of_one_external_id_store_one_message(
    deployment: Deployment, servers: int
) -> None:
    d = deployment
    targets = [d.web, d.dispatching][:servers]
    external_id = f"dup-{uuid.uuid4().hex}"
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    answers = await asyncio.gather(*(
        push_message(d.client, targets[n % servers], d.a, d.inbox_a, external_id=external_id,
                     identifier=customer, content="the same delivery, again and again")
        for n in range(40)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 39 + [201], [a.text for a in answers if a.status_code >= 300]
    assert len({a.text for a in answers}) == 1  # every answer names the same ids
    with psycopg.connect(sync_dsn(d.cluster.database_url)) as conn:
        stored = conn.execute("SELECT count(*) FROM messages WHERE external_id = %s",
                              (external_id,)).fetchone()
        contacts = conn.execute(
            "SELECT count(DISTINCT contact_id) FROM contact_identities WHERE value = %s",
            (customer,)).fetchone()
    assert stored == (1,)
    assert contacts == (1,)


async def test_many_messages_of_a_few_customers_through_two_servers_all_stored(
    deployment: Deployment,
) -> None:
    d = deployment
    customers = [f"cust-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    gate = asyncio.Semaphore(48)

    async def deliver(n: int) -> httpx.Response:
        async with gate:
            return await push_message(d.client, (d.web, d.dispatching)[n % 2], d.a, d.inbox_a,
                                      identifier=customers[(n * 7) % len(customers)],
                                      content=f"message {n}")

    answers = await asyncio.gather(*(deliver(n) for n in range(240)))
    failed = [(a.status_code, a.text[:200]) for a in answers if a.status_code != 201]
    assert failed == []
    with psycopg.connect(sync_dsn(d.cluster.database_url)) as conn:
        conversations = conn.execute(
            "SELECT count(DISTINCT conversation_id) FROM messages WHERE id = ANY(%s)",
            ([a.json()["message_id"] for a in answers],)).fetchone()
    assert conversations == (len(customers),)  # each customer's messages in one conversation
