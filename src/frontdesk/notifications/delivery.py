"""Push on assignment: the dispatcher listener that picks who to tell, and the sender.

The listener runs inside the dispatch transaction and only reads: whom a
`conversation.assigned` event concerns (the new assignee, unless they assigned it to
themselves), their browsers and their language. The messages go out after the dispatch
commits, in a task of their own, so a slow push service never holds up webhooks or the
live inbox. A push is a nudge, not a record (the conversation is in the inbox either way):
a process that stops before sending loses the nudge, and nothing is retried later, when
"new conversation for you" would only be noise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.accounts.models import User
from frontdesk.config import Settings
from frontdesk.contacts.models import Contact
from frontdesk.core.dispatcher import AfterCommit, DispatchedEvent
from frontdesk.core.events import EventType
from frontdesk.core.netguard import UnsafeURL
from frontdesk.db.base import utcnow
from frontdesk.notifications.models import PushSubscription
from frontdesk.notifications.webpush import PushTarget, send_push

log = logging.getLogger(__name__)

# The push service's answers meaning "this subscription is gone": forget it.
_GONE = frozenset({404, 410})


@dataclass(frozen=True)
class _Push:
    subscription_id: int
    target: PushTarget
    message: dict[str, Any]
    topic: str


class PushListener:
    """Dispatcher listener: `conversation.assigned` to someone else -> their browsers."""

    name = "push"

    def __init__(self, sender: PushSender) -> None:
        self._sender = sender

    async def handle(self, session: AsyncSession,
                     events: Sequence[DispatchedEvent]) -> AfterCommit | None:
        wanted: list[tuple[DispatchedEvent, int]] = []
        for event in events:
            if event.type != EventType.CONVERSATION_ASSIGNED.value:
                continue
            change = (event.payload.get("changes") or {}).get("assignee_id")
            assignee = change[1] if isinstance(change, list) and len(change) == 2 else None
            if assignee is not None and assignee != event.payload.get("actor_user_id"):
                wanted.append((event, assignee))
        if not wanted:
            return None
        # Imported here: the web package imports the runtime, which imports this module.
        from frontdesk.web.push_texts import assignment_notification

        rows = (await session.execute(
            select(PushSubscription.id, PushSubscription.workspace_id, PushSubscription.user_id,
                   PushSubscription.endpoint, PushSubscription.p256dh, PushSubscription.auth)
            .where(PushSubscription.user_id.in_({a for _, a in wanted}))
        )).all()
        browsers: dict[tuple[int, int], list[Any]] = {}
        for row in rows:
            browsers.setdefault((row.workspace_id, row.user_id), []).append(row)
        people = {u.id: u for u in (await session.execute(
            select(User).where(User.id.in_({a for _, a in wanted} | {
                e.payload.get("actor_user_id") for e, _ in wanted} - {None}))
        )).scalars()}
        contact_ids = {(e.payload.get("conversation") or {}).get("contact_id") for e, _ in wanted}
        contacts = dict((await session.execute(
            select(Contact.id, Contact.name).where(Contact.id.in_(contact_ids - {None}))
        )).tuples().all())
        # Kept for this dispatch alone, never on the listener: pushes of a batch that rolls
        # back (or of an event whose SAVEPOINT does) are dropped with it, not sent later.
        queued: list[_Push] = []
        for event, assignee in wanted:
            targets = browsers.get((event.workspace_id, assignee))
            person = people.get(assignee)
            actor_id = event.payload.get("actor_user_id")
            if not targets or person is None or not person.notify_assignments:
                continue
            conversation = event.payload.get("conversation") or {}
            actor = people.get(actor_id) if isinstance(actor_id, int) else None
            message = assignment_notification(
                person.locale, conversation_id=int(conversation.get("id", 0)),
                actor_name=(actor.name or actor.email) if actor else None,
                contact_name=contacts.get(int(conversation.get("contact_id") or 0)) or None,
                subject=conversation.get("subject"), workspace_id=event.workspace_id,
            )
            for row in targets:
                queued.append(_Push(row.id, PushTarget(row.endpoint, row.p256dh, row.auth),
                                    message, topic=f"conversation-{conversation.get('id')}"))
        if not queued:
            return None
        # After the commit: send what this dispatch found.
        return lambda: self._sender.send_soon(queued)


class PushSender:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

    def send_soon(self, pushes: list[_Push]) -> None:
        task = asyncio.get_running_loop().create_task(self._send_all(pushes))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Let pushes in flight finish (they are bounded by the request limit)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self._settings.webhook_timeout_seconds)

    async def _send_all(self, pushes: list[_Push]) -> None:
        outcomes = await asyncio.gather(*(self._send_one(p) for p in pushes))
        gone = [p.subscription_id for p, (ok, status, _) in zip(pushes, outcomes, strict=True)
                if not ok and status in _GONE]
        failed = [(p.subscription_id, error) for p, (ok, status, error)
                  in zip(pushes, outcomes, strict=True) if not ok and status not in _GONE]
        sent = [p.subscription_id for p, (ok, _, _) in zip(pushes, outcomes, strict=True) if ok]
        try:
            async with self._sessions() as session, session.begin():
                if gone:
                    await session.execute(delete(PushSubscription)
                                          .where(PushSubscription.id.in_(gone)))
                if sent:
                    await session.execute(update(PushSubscription)
                                          .where(PushSubscription.id.in_(sent))
                                          .values(last_sent_at=utcnow(), failures=0,
                                                  last_error=None))
                for subscription_id, error in failed:
                    await session.execute(update(PushSubscription)
                                          .where(PushSubscription.id == subscription_id)
                                          .values(failures=PushSubscription.failures + 1,
                                                  last_error=error[:500]))
        except Exception as exc:  # bookkeeping only; the pushes themselves went out
            log.warning("recording the outcome of %d pushes failed: %s", len(pushes), exc)

    async def _send_one(self, push: _Push) -> tuple[bool, int | None, str]:
        # Imported here: the web package imports the runtime, which imports this module.
        from frontdesk.web.security import load_secret_key

        settings = self._settings
        try:
            response = await send_push(
                push.target, push.message, secret_key=load_secret_key(settings),
                subject=settings.push_subject, allow_private=settings.push_allow_private,
                topic=push.topic, limit_seconds=settings.webhook_timeout_seconds,
            )
        except UnsafeURL as exc:
            return False, None, exc.reason
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            return False, None, f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return True, response.status_code, ""
        return False, response.status_code, f"push service answered {response.status_code}"
