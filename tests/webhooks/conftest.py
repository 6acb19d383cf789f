"""Webhook test fixtures: real HTTP receivers on 127.0.0.1 (see receiver.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def second_receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()
