"""Stopping processes the way an orchestrator does (SIGTERM): they finish what is in hand
and exit within seconds; connected agents are told to reconnect, not left hanging."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from tests.processes import Cluster, RealtimeClient

pytestmark = pytest.mark.slow

CLOSE_SERVICE_RESTART = 1012  # what a WebSocket client takes as "reconnect soon"


async def test_sigterm_stops_server_and_worker_within_seconds_and_agents_reconnect(
    make_cluster: Callable[[str], Cluster],
) -> None:
    cluster = make_cluster("sqlite")
    server = cluster.start_server()
    worker = cluster.start_worker()
    tenant = await cluster.tenant()
    server.ready()
    worker.ready()
    async with RealtimeClient(server, tenant.token) as agent:
        started = time.monotonic()
        # uvicorn shuts down gracefully, then re-raises the signal it caught: -SIGTERM.
        assert server.stop(timeout=10) == -signal.SIGTERM, cluster.explain()
        assert await agent.wait_closed(timeout=5) == CLOSE_SERVICE_RESTART
    assert worker.stop(timeout=10) == 0, cluster.explain()
    assert time.monotonic() - started < 10
    assert "Stopping: finishing the batch in hand." in worker.log()
    assert "Traceback" not in server.log() + worker.log(), cluster.explain()
