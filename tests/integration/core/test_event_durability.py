"""Events committed by a process survive that process being killed: the transactional
outbox keeps them, and the next dispatcher (a restarted server, or a worker) delivers
them, at least once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tests.integration.conftest import need
from tests.processes import (
    Cluster,
    RealtimeClient,
    create_api_inbox,
    eventually,
    json_of,
    outbox_state,
    push_message,
)

pytestmark = pytest.mark.slow

MESSAGES = 40


@pytest.mark.parametrize(
    ("kind", "dispatcher"),
    [("sqlite", "the restarted server"), ("postgresql", "a worker")],
)
async def test_events_committed_before_a_kill_are_delivered_after_restart(
    kind: str, dispatcher: str, make_cluster: Callable[[str], Cluster]
) -> None:
    need("redis")
    cluster = make_cluster(kind)
    # A server that does not dispatch, so every event it commits stays in the outbox; and
    # beside it another web process where an agent watches (through Redis) for the events.
    doomed = cluster.start_server(embedded_worker=False)
    watch = cluster.start_server(embedded_worker=False, redis=True)
    doomed.ready()
    tenant = await cluster.tenant()
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client, \
            RealtimeClient(watch.ready(), tenant.token) as agent:
        inbox = await create_api_inbox(client, doomed, tenant)
        # The set-up's own events (the tenant's token, the inbox): in the outbox as well.
        setup = outbox_state(cluster.database_url, tenant.workspace_id)["events"]
        answers = await asyncio.gather(*(
            push_message(client, doomed, tenant, inbox, content=f"message {n}")
            for n in range(MESSAGES)))
        message_ids = {json_of(a)["message_id"] for a in answers}
        assert len(message_ids) == MESSAGES

        doomed.kill()  # SIGKILL right after the 201s: none of its shutdown code runs
        before = outbox_state(cluster.database_url, tenant.workspace_id)
        # Per message: a contact, a conversation and the message itself were created.
        assert before == {"events": setup + 3 * MESSAGES, "delivered": 0}
        assert agent.events == []

        if dispatcher == "a worker":
            cluster.start_worker(redis=True).ready()
        else:
            cluster.start_server(embedded_worker=True, redis=True).ready()
        await eventually(
            lambda: {e["data"]["message"]["id"] for e in agent.events
                     if e["type"] == "message.created"},
            lambda seen: seen >= message_ids, timeout=20,
            what=f"all {MESSAGES} message.created events reaching the agent",
            explain=cluster.explain)
        after = await eventually(
            lambda: outbox_state(cluster.database_url, tenant.workspace_id),
            lambda state: state["delivered"] == state["events"], timeout=10,
            what="every event marked delivered", explain=cluster.explain)
    assert after == {"events": setup + 3 * MESSAGES, "delivered": setup + 3 * MESSAGES}
    types = [e["type"] for e in agent.events]
    assert types.count("conversation.created") == MESSAGES
    assert types.count("contact.created") == MESSAGES

