"""The real-time hub: pushes workspace events to connected agents.

Embedded, the hub hands events straight to this process's connections. With Redis
(FRONTDESK_REDIS_URL) every process publishes to one Redis channel and every process
delivers what it hears to its own connections, so an event dispatched anywhere reaches
agents connected anywhere. A connection belongs to one workspace and the hub only ever
gives it that workspace's events; a private event (core.events.PRIVATE_EVENTS: one user's
read state) only to the connections of the user it names.

The channel is named after FRONTDESK_REDIS_PREFIX: the envelope carries a workspace id,
which means nothing outside its own database, so two installations (or test runs) on one
Redis must not share a channel.

Real-time push is a live view, not a record: when Redis is unreachable the dispatcher
goes on (webhooks and the other listeners must not wait for it), and when this process's
subscription was interrupted its sockets are closed so that their clients reconnect and
fetch what they missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core.dispatcher import DispatchedEvent
from frontdesk.core.events import ADMIN_EVENT_TYPES, private_to

log = logging.getLogger(__name__)

# Workspace administration is for webhooks, not for agents' live view (core.events).
_ADMIN_EVENT_NAMES = frozenset(t.value for t in ADMIN_EVENT_TYPES)

QUEUE_LIMIT = 1000
REDIS_START_TIMEOUT = 10.0
# A publish waits no longer than this: the dispatcher (and the webhooks behind it) must
# not hang on a Redis that stopped answering.
REDIS_PUBLISH_TIMEOUT = 5.0
# WebSocket close codes a client can act on: both mean "reconnect, then resync".
CLOSE_GOING_AWAY = 1001  # this server is shutting down
CLOSE_MISSED_EVENTS = 1012  # events may have been missed (Redis subscription interrupted)
CLOSE_TOO_SLOW = 4008  # the client did not keep up and its queue overflowed


def redis_channel(prefix: str) -> str:
    return f"{prefix}:realtime"


def _shown(url: str) -> str:
    """The URL fit for a log or an error message: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class Subscription:
    """One WebSocket's mailbox. A client too slow to keep up is dropped, not waited for."""

    def __init__(self, workspace_id: int, user_id: int | None = None) -> None:
        self.workspace_id = workspace_id
        self.user_id = user_id  # who opened it: private events (their own) reach only them
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_LIMIT)
        self.close_code: int | None = None  # set when the socket must close (then a None)
        self.conversation_ids: set[int] | None = None  # None: every conversation

    @property
    def overflowed(self) -> bool:
        return self.close_code == CLOSE_TOO_SLOW

    def offer(self, event: dict[str, Any]) -> None:
        audience = private_to(str(event.get("type")), event.get("data"))
        if audience is not None and audience != self.user_id:
            return  # another user's own business (their read state)
        if self.conversation_ids is not None:
            conversation_id = _conversation_id(event)
            if conversation_id is not None and conversation_id not in self.conversation_ids:
                return
        if self.close_code is not None:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.close(CLOSE_TOO_SLOW)

    def close(self, code: int) -> None:
        """Tell the socket to close with `code` (once); the client reconnects and resyncs."""
        if self.close_code is not None:
            return
        self.close_code = code
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(None)


def _conversation_id(event: dict[str, Any]) -> int | None:
    data = event.get("data") or {}
    conversation = data.get("conversation")
    if isinstance(conversation, dict):
        value = conversation.get("id")
        return value if isinstance(value, int) else None
    return None


class RealtimeHub:
    def __init__(self, redis_url: str | None = None, *, prefix: str = "frontdesk") -> None:
        self._redis_url = redis_url
        self.channel = redis_channel(prefix)
        self._redis: Redis | None = None  # publishes, with timeouts
        self._redis_sub: Redis | None = None  # subscribes: an idle wait is normal there
        self._listener: asyncio.Task[None] | None = None
        self._subscriptions: dict[int, set[Subscription]] = {}
        self._ready = asyncio.Event()

    @property
    def distributed(self) -> bool:
        return self._redis_url is not None

    async def start(self) -> None:
        if self._redis_url:
            self._redis = Redis.from_url(self._redis_url, socket_timeout=REDIS_PUBLISH_TIMEOUT,
                                         socket_connect_timeout=REDIS_PUBLISH_TIMEOUT)
            self._redis_sub = Redis.from_url(self._redis_url, socket_keepalive=True,
                                             socket_connect_timeout=REDIS_PUBLISH_TIMEOUT)
            try:  # a wrong URL is said at once, not after the subscription's time limit
                await asyncio.wait_for(self._redis.ping(), timeout=REDIS_START_TIMEOUT)
            except Exception as exc:
                await self.stop()
                raise RuntimeError(f"Cannot reach Redis at {_shown(self._redis_url)} ({exc}); "
                                   "check FRONTDESK_REDIS_URL") from None
            self._listener = asyncio.create_task(self._listen(), name="realtime-redis")
            try:
                await asyncio.wait_for(self._ready.wait(), timeout=REDIS_START_TIMEOUT)
            except TimeoutError:
                await self.stop()
                raise RuntimeError(
                    f"Cannot subscribe to Redis at {_shown(self._redis_url)} within "
                    f"{REDIS_START_TIMEOUT:.0f} s; check FRONTDESK_REDIS_URL") from None

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        for client in (self._redis, self._redis_sub):
            if client is not None:
                await client.aclose()
        self._redis = self._redis_sub = None
        self._close_all(CLOSE_GOING_AWAY)

    def _close_all(self, code: int) -> int:
        subs = [sub for group in self._subscriptions.values() for sub in group]
        for sub in subs:
            sub.close(code)
        return len(subs)

    def subscribe(self, workspace_id: int, user_id: int | None = None) -> Subscription:
        sub = Subscription(workspace_id, user_id)
        self._subscriptions.setdefault(workspace_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscriptions.get(sub.workspace_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscriptions[sub.workspace_id]

    def connection_count(self) -> int:
        return sum(len(s) for s in self._subscriptions.values())

    async def publish(self, workspace_id: int, event: dict[str, Any]) -> None:
        await self.publish_many([(workspace_id, event)])

    async def publish_many(self, events: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Send events to every process's agents; with Redis, one round trip per batch."""
        if self._redis is None:
            for workspace_id, event in events:
                self._deliver(workspace_id, event)
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for workspace_id, event in events:
                pipe.publish(self.channel,
                             json.dumps({"workspace_id": workspace_id, "event": event}))
            await pipe.execute()

    def _deliver(self, workspace_id: int, event: dict[str, Any]) -> None:
        for sub in list(self._subscriptions.get(workspace_id, ())):
            sub.offer(event)

    async def _listen(self) -> None:
        assert self._redis_sub is not None
        interrupted = False
        while True:
            try:
                async with self._redis_sub.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._ready.set()
                    if interrupted:
                        # Whatever was published meanwhile never reached these sockets:
                        # have their clients reconnect and fetch the current state.
                        closed = self._close_all(CLOSE_MISSED_EVENTS)
                        log.warning("real-time Redis subscription restored; closed %d "
                                    "connections so that their clients resync", closed)
                        interrupted = False
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        try:
                            envelope = json.loads(message["data"])
                            self._deliver(int(envelope["workspace_id"]), envelope["event"])
                        except (ValueError, KeyError, TypeError):
                            log.warning("ignored a malformed real-time message from Redis")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarted: reconnect, agents resync on their side
                if self._ready.is_set() and not interrupted:  # once per outage, not per retry
                    log.warning("real-time Redis subscription lost (%s); reconnecting", exc)
                    interrupted = True
                await asyncio.sleep(1)


class RealtimeListener:
    """Dispatcher listener: every committed event goes to the workspace's agents, except
    workspace administration (`core.events.ADMIN_EVENT_TYPES`), which is for webhooks."""

    name = "realtime"

    def __init__(self, hub: RealtimeHub) -> None:
        self._hub = hub

    async def handle(self, session: AsyncSession, events: Sequence[DispatchedEvent]) -> None:
        # Published inside the dispatch transaction, so a dispatcher killed before its
        # commit publishes again after the restart (clients dedupe by event id). A failure
        # is logged, not raised: raising would retry the batch and park it with backoff,
        # holding up webhooks for the sake of a live view that clients resync anyway.
        for_agents = [(e.workspace_id, e.envelope()) for e in events
                      if e.type not in _ADMIN_EVENT_NAMES]
        if not for_agents:
            return
        try:
            await self._hub.publish_many(for_agents)
        except Exception as exc:
            log.warning("real-time push of %d events failed (%s); agents connected "
                        "elsewhere miss them until they resync", len(for_agents), exc)
