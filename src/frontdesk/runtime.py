"""The composition root: engines, the writer, the dispatcher and its listeners, the hub.

One Runtime lives in each process (`serve` or `worker`). Everything long-lived is built
here and nowhere else, so a newcomer can see in one page what runs and who talks to whom.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.channels.email.imap_poller import DeliveryStatus, ImapPollers
from frontdesk.channels.email.outbound import EmailOutboundListener, EmailSender
from frontdesk.config import Settings
from frontdesk.conversations.scheduling import ScheduledReplySender
from frontdesk.conversations.uploads import UploadSweeper
from frontdesk.core.dispatcher import CrossProcessWakeup, EventDispatcher, Listener
from frontdesk.core.realtime import RealtimeHub, RealtimeListener
from frontdesk.core.secrets import SecretBox, secret_box
from frontdesk.core.writer import GroupCommitWriter
from frontdesk.db.engine import make_async_engine, make_sessionmaker, make_sync_engine
from frontdesk.notifications.delivery import PushListener, PushSender
from frontdesk.webhooks.delivery import WebhookListener, WebhookSender

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        url = settings.resolved_database_url()
        self.read_engine = make_async_engine(url, writer=False)
        self.is_sqlite = self.read_engine.dialect.name == "sqlite"
        # On SQLite, sessions that write BEGIN IMMEDIATE (see db.engine); readers don't.
        self.write_engine = (make_async_engine(url, writer=True) if self.is_sqlite
                             else self.read_engine)
        self.read_sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(self.read_engine)
        self.sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(self.write_engine)
        self.sync_engine = make_sync_engine(url)
        self.hub = RealtimeHub(settings.redis_url, prefix=settings.redis_prefix)
        # Webhooks: the listener records deliveries in the dispatch transaction; the sender
        # sends them after it commits (woken right away, and polling for retries).
        self.webhook_sender = WebhookSender.from_settings(self.sessions, self.read_sessions,
                                                          settings)
        self.webhook_listener = WebhookListener(on_new_deliveries=self.webhook_sender.wake)
        # E-mail replies: the listener queues them in the dispatch transaction, the sender
        # sends them through the relay after it commits (woken right away, polling retries).
        self.email_sender = EmailSender(self.sessions, self.read_sessions, settings)
        self.email_listener = EmailOutboundListener(settings, on_new_mail=self.email_sender.wake)
        # Web Push to agents' browsers on new assignments: chosen in the dispatch
        # transaction, sent after its commit (a nudge: never retried later).
        self.push_sender = PushSender(self.sessions, settings)
        self.push_listener = PushListener(self.push_sender)
        self.listeners: list[Listener] = [RealtimeListener(self.hub), self.webhook_listener,
                                          self.email_listener, self.push_listener]
        # The dispatcher's own pool on PostgreSQL, without the ping that checks each
        # connection as it leaves the pool: under intake load the dispatcher takes one
        # for every batch, and the ping was a sixth of its CPU. A dead connection fails the
        # pass, is dropped, and the next pass (after `poll_interval`) takes a new one.
        self.dispatch_engine = (self.write_engine if self.is_sqlite else
                                make_async_engine(url, pre_ping=False, pool_size=2))
        self.dispatcher = EventDispatcher(make_sessionmaker(self.dispatch_engine),
                                          self.listeners)
        # On PostgreSQL other processes (workers, other web processes) may dispatch: every
        # commit of events here rings them through NOTIFY. SQLite has no such channel (and
        # is run as one process): its dispatchers elsewhere poll.
        self.wakeup: CrossProcessWakeup | None = None
        if not self.is_sqlite:
            self.wakeup = CrossProcessWakeup(self.read_engine, on_ring=self.dispatcher.wake_here)
            self.dispatcher.announce_to(self.wakeup.ring)
        writers = settings.intake_writers or (1 if self.is_sqlite else 2)
        gather_ms = settings.intake_gather_ms
        if gather_ms is None:
            gather_ms = 0.0 if self.is_sqlite else 3.0
        self.writer = GroupCommitWriter(
            self.sync_engine, connections=writers, max_batch=settings.intake_max_batch,
            gather_seconds=gather_ms / 1000, gather_units=settings.intake_gather_units,
            on_commit=self.dispatcher.wake,
        )
        # Scheduled replies go out wherever events are dispatched (serve or worker).
        self.scheduled_sender = ScheduledReplySender(self.sessions, self.read_sessions,
                                                     on_sent=self.dispatcher.wake)
        # Files agents uploaded for a reply that no message used: deleted after
        # FRONTDESK_UPLOAD_RETENTION_HOURS, wherever events are dispatched.
        self.upload_sweeper = UploadSweeper(self.read_sessions, settings)
        # IMAP mailboxes of e-mail inboxes: polled wherever events are dispatched (serve or
        # worker), each by one process of the cluster at a time (a lease row).
        self.imap_pollers = ImapPollers(self.sessions, settings, box=self._secret_box,
                                        deliver=self.receive_imap_mail)
        self._background: list[asyncio.Task[None]] = []

    def _secret_box(self) -> SecretBox:
        return secret_box(self.settings)

    async def receive_imap_mail(self, inbox_id: int, raw: bytes) -> DeliveryStatus:
        # Imported here: the e-mail service needs a built Runtime (and imports this module).
        from frontdesk.channels.email.service import receive_email

        received = await receive_email(self, raw, inbox_id=inbox_id, envelope_recipients=(),
                                       source="imap")
        return received.status

    async def start(self, *, run_dispatcher: bool) -> None:
        if self.settings.gil_switch_interval_ms > 0:
            # The writer's thread comes back from each round trip to the database wanting
            # the GIL; with Python's 5 ms the event loop may keep it that long each time.
            sys.setswitchinterval(self.settings.gil_switch_interval_ms / 1000)
        await self.hub.start()
        if self.wakeup is not None:
            await self.wakeup.start(listen=run_dispatcher)
        await self.writer.start()
        if run_dispatcher:
            self._background.append(
                asyncio.create_task(self.dispatcher.run_forever(), name="dispatcher")
            )
            self._background.append(
                asyncio.create_task(self.webhook_sender.run_forever(), name="webhook-sender")
            )
            self._background.append(
                asyncio.create_task(self.email_sender.run_forever(), name="email-sender"))
            self._background.append(
                asyncio.create_task(self.imap_pollers.run_forever(), name="imap-pollers"))
            self._background.append(asyncio.create_task(
                self.scheduled_sender.run_forever(), name="scheduled-replies"))
            self._background.append(asyncio.create_task(
                self.upload_sweeper.run_forever(), name="upload-sweeper"))

    async def stop(self) -> None:
        await self.imap_pollers.stop()  # before the writer: a mail in hand is stored first
        self.dispatcher.stop()
        self.webhook_sender.stop()
        self.email_sender.stop()
        self.scheduled_sender.stop()
        self.upload_sweeper.stop()
        await self.push_sender.stop()
        for task in self._background:
            try:
                await asyncio.wait_for(task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.writer.stop()
        if self.wakeup is not None:
            await self.wakeup.stop()
        await self.hub.stop()
        await self.read_engine.dispose()
        if self.write_engine is not self.read_engine:
            await self.write_engine.dispose()
        if self.dispatch_engine not in (self.write_engine, self.read_engine):
            await self.dispatch_engine.dispose()
        self.sync_engine.dispose()
