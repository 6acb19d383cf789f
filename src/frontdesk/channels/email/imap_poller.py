"""IMAP pollers: one task per mailbox this process holds the lease of.

The rules that keep mail from being lost or doubled:
- fetching resumes after the last stored UID, under the mailbox's UIDVALIDITY; a new
  UIDVALIDITY starts again from the first message (de-duplication by Message-ID keeps
  what is already stored from being stored twice). Never by date;
- a mail is flagged \\Seen (or moved) only after `deliver` returned, which is only after
  its transaction committed; progress (the last UID) is written after that. A crash in
  between fetches the mail again, and it is recognised as a duplicate;
- a mail over the size limit is seen by its RFC822.SIZE, never downloaded, and reported;
- a failure (network, server, database) is written to `last_error`, and the mailbox is
  tried again after a backoff that grows to `imap_max_backoff_seconds`. Nothing here ever
  raises into the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.channels.email import imap_service
from frontdesk.channels.email.imap import ImapConnection, ImapEndpoint, ImapError, tls_context
from frontdesk.channels.email.imap_models import AfterImport
from frontdesk.channels.email.imap_service import LeaseLost, MailboxToPoll
from frontdesk.config import Settings
from frontdesk.core.secrets import SecretBox, UnreadableSecret
from frontdesk.db.base import utcnow

log = logging.getLogger(__name__)

DeliveryStatus = Literal["stored", "duplicate", "quarantined"]
Deliver = Callable[[int, bytes], Awaitable[DeliveryStatus]]
"""Store one raw mail into the inbox (id); returns only after it is committed, raises
when it could not be stored (then the mail must stay unflagged on the server)."""

# Fetched and stored in chunks: one round trip for many small mails, bounded memory for
# big ones.
CHUNK_MESSAGES = 50
# Sizes are asked for this many UIDs at a time (see ImapConnection.sizes).
SIZE_WINDOW = 400
CHUNK_BYTES = 32 * 1024 * 1024
# Mails of one chunk being stored at once (in independent lanes, see `_lanes`).
STORE_CONCURRENCY = 16


class ImapPollers:
    """Finds the enabled mailboxes nobody polls, takes their leases and polls them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 box: Callable[[], SecretBox], deliver: Deliver) -> None:
        self._sessions = sessions
        self._settings = settings
        self._box = box
        self._deliver = deliver
        self.owner = f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._tasks: dict[int, tuple[int, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        while not self._stopping:
            try:
                await self.scan()
            except Exception:  # the database may be away for a while: try again later
                log.exception("looking for IMAP mailboxes to poll failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.imap_scan_seconds)

    async def scan(self) -> None:
        async with self._sessions() as session:
            rows = await imap_service.enabled_mailboxes(session)
        enabled = {mailbox_id: version for mailbox_id, version, _owner, _until in rows}
        now = utcnow()
        # Only a mailbox whose lease is free or has run out is worth a write to claim.
        free = {mailbox_id for mailbox_id, _version, owner, until in rows
                if owner is None or owner == self.owner or until is None or until < now}
        for mailbox_id, (version, task) in list(self._tasks.items()):
            if task.done() or enabled.get(mailbox_id) != version:
                # Disabled, deleted, reconfigured, or its poller ended: stop it; a new one
                # starts below with the new settings if the mailbox is still enabled.
                await self._stop_task(mailbox_id)
        for mailbox_id, version in enabled.items():
            if mailbox_id in self._tasks or mailbox_id not in free or self._stopping:
                continue
            async with self._sessions() as session:
                won = await imap_service.claim_lease(session, mailbox_id, self.owner,
                                                     self._settings.imap_lease_seconds)
                await session.commit()
            if won:
                poller = MailboxPoller(mailbox_id, self._sessions, self._settings, self._box,
                                       self._deliver, self.owner)
                task = asyncio.create_task(poller.run(), name=f"imap-{mailbox_id}")
                self._tasks[mailbox_id] = (version, task)

    @property
    def polled(self) -> list[int]:
        return sorted(i for i, (_v, task) in self._tasks.items() if not task.done())

    async def _stop_task(self, mailbox_id: int) -> None:
        _version, task = self._tasks.pop(mailbox_id)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            async with self._sessions() as session:
                await imap_service.release_lease(session, mailbox_id, self.owner)
                await session.commit()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for mailbox_id in list(self._tasks):
            await self._stop_task(mailbox_id)


class MailboxPoller:
    """Polls one mailbox for as long as it holds the lease."""

    def __init__(self, mailbox_id: int, sessions: async_sessionmaker[AsyncSession],
                 settings: Settings, box: Callable[[], SecretBox], deliver: Deliver,
                 owner: str) -> None:
        self.mailbox_id = mailbox_id
        self._sessions = sessions
        self._settings = settings
        self._box = box
        self._deliver = deliver
        self._owner = owner
        # Each wait renews the lease well before it runs out.
        self._cycle = min(settings.imap_idle_seconds, settings.imap_lease_seconds / 3)

    async def run(self) -> None:
        """Work, while a keeper renews the lease on its own clock: a long catch-up (a
        thousand mails after an outage) must not let the lease run out under it, and a
        lease that is lost anyway stops the work at once."""
        work = asyncio.create_task(self._work(), name=f"imap-{self.mailbox_id}-work")
        keeper = asyncio.create_task(self._keep_lease(), name=f"imap-{self.mailbox_id}-lease")
        try:
            await asyncio.wait({work, keeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, keeper):
                task.cancel()
            for task in (work, keeper):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _keep_lease(self) -> None:
        """Returns when the lease is lost (taken over after we stalled, or disabled)."""
        while True:
            await asyncio.sleep(self._settings.imap_lease_seconds / 3)
            try:
                async with self._sessions() as session:
                    won = await imap_service.claim_lease(
                        session, self.mailbox_id, self._owner, self._settings.imap_lease_seconds)
                    await session.commit()
            except Exception:  # the database is away: the next try may reach it in time
                log.warning("renewing the lease of IMAP mailbox %s failed", self.mailbox_id,
                            exc_info=True)
                continue
            if not won:
                log.info("IMAP mailbox %s is polled elsewhere now, or was disabled",
                         self.mailbox_id)
                return

    async def _work(self) -> None:
        failures = 0
        while True:
            version: int | None = None
            try:
                mailbox = await self._load()
                if mailbox is None:
                    return
                failures, version = mailbox.failures, mailbox.config_version
                await self._session_with(mailbox)
            except LeaseLost as exc:
                log.info("%s; this process stops polling it", exc)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = _error_text(exc)
                log.warning("IMAP mailbox %s: %s", self.mailbox_id, error)
                try:
                    async with self._sessions() as session:
                        failures = await imap_service.record_failure(
                            session, self.mailbox_id, self._owner, error,
                            config_version=version)
                        await session.commit()
                except LeaseLost:
                    return
                except Exception:
                    failures += 1
                    log.exception("recording the IMAP error of mailbox %s failed",
                                  self.mailbox_id)
                await self._back_off(failures)

    async def _load(self) -> MailboxToPoll | None:
        async with self._sessions() as session:
            if not await imap_service.claim_lease(session, self.mailbox_id, self._owner,
                                                  self._settings.imap_lease_seconds):
                await session.rollback()
                raise LeaseLost(f"IMAP mailbox {self.mailbox_id} is polled elsewhere or "
                                "was disabled")
            mailbox = await imap_service.load_for_polling(session, self.mailbox_id)
            await session.commit()
            return mailbox

    async def _renew(self, mailbox: MailboxToPoll) -> None:
        async with self._sessions() as session:
            won = await imap_service.claim_lease(session, mailbox.id, self._owner,
                                                 self._settings.imap_lease_seconds)
            current = await imap_service.load_for_polling(session, mailbox.id)
            await session.commit()
        if not won or current is None or current.config_version != mailbox.config_version:
            raise LeaseLost(f"IMAP mailbox {mailbox.id} was changed, disabled or taken over")

    async def _back_off(self, failures: int) -> None:
        ceiling = min(self._settings.imap_max_backoff_seconds, 2.0 ** min(failures, 20))
        delay = random.uniform(ceiling / 2, ceiling)  # jitter: not all at once after an outage
        while delay > 0:
            step = min(delay, self._cycle)
            await asyncio.sleep(step)
            delay -= step
            async with self._sessions() as session:
                won = await imap_service.claim_lease(session, self.mailbox_id, self._owner,
                                                     self._settings.imap_lease_seconds)
                await session.commit()
            if not won:
                raise LeaseLost(f"IMAP mailbox {self.mailbox_id} was disabled or taken over")

    async def _session_with(self, mailbox: MailboxToPoll) -> None:
        try:
            password = self._box().decrypt(mailbox.password_encrypted)
        except UnreadableSecret as exc:
            raise ImapError(f"{exc}; enter the IMAP password again") from exc
        endpoint = ImapEndpoint(mailbox.host, mailbox.port, mailbox.tls, mailbox.username,
                                password, mailbox.mailbox)
        connection = await ImapConnection.open(
            endpoint, allow_private=self._settings.imap_allow_private,
            context=tls_context(self._settings.imap_ca_file),
            step_seconds=self._settings.imap_timeout_seconds)
        try:
            state = await connection.select()
            last_uid = mailbox.last_uid
            if mailbox.uidvalidity != state.uidvalidity:
                if mailbox.uidvalidity is not None:
                    log.warning("IMAP mailbox %s: UIDVALIDITY changed (%s -> %s); fetching it "
                                "again from the start", mailbox.id, mailbox.uidvalidity,
                                state.uidvalidity)
                async with self._sessions() as session:
                    await imap_service.record_uidvalidity(session, mailbox, self._owner,
                                                          state.uidvalidity)
                    await session.commit()
                last_uid = 0
            while True:
                last_uid = await self._catch_up(connection, mailbox, state.uidvalidity, last_uid)
                if connection.supports_idle:
                    await connection.wait_for_news(self._cycle)
                else:
                    await connection.wait_for_news(min(self._settings.imap_poll_seconds,
                                                       self._cycle))
                await self._renew(mailbox)
                # A server may reassign UIDs while we are connected (it must then close the
                # mailbox; some just answer with another UIDVALIDITY on the next SELECT).
                if (await connection.select()).uidvalidity != state.uidvalidity:
                    raise ImapError("UIDVALIDITY changed while connected; starting over")
        finally:
            await connection.close()

    async def _catch_up(self, connection: ImapConnection, mailbox: MailboxToPoll,
                        uidvalidity: int, last_uid: int) -> int:
        """Store everything after last_uid; returns the new last UID."""
        limit = self._settings.email_max_message_bytes
        new_uids = await connection.uids_after(last_uid)
        if not new_uids:
            async with self._sessions() as session:
                await imap_service.record_progress(session, mailbox, self._owner,
                                                   uidvalidity=uidvalidity, last_uid=last_uid,
                                                   imported=0)
                await session.commit()
            return last_uid
        for start in range(0, len(new_uids), SIZE_WINDOW):
            sizes = await connection.sizes(new_uids[start:start + SIZE_WINDOW])
            for chunk in _chunks(sizes, limit):
                for uid, size in chunk:
                    if size > limit:
                        log.warning("IMAP mailbox %s: UID %s is %s bytes, over the limit of %s; "
                                    "not downloaded", mailbox.id, uid, size, limit)
                wanted = [uid for uid, size in chunk if size <= limit]
                fetched = {mail.uid: mail.raw for mail in await connection.fetch(wanted)}
                for uid, size in chunk:
                    if size > limit:
                        async with self._sessions() as session:
                            await imap_service.record_refused(session, mailbox, self._owner,
                                                              uid=uid, size=size, limit=limit)
                            await session.commit()
                outcome = await self._store_all(mailbox.inbox_id, fetched)
                stored = sorted(uid for uid, error in outcome.items() if error is None)
                failure = next((outcome[uid] for uid in sorted(outcome) if outcome[uid]), None)
                # Progress only over an unbroken run of settled UIDs (stored, refused, or gone
                # from the server): what follows a failure is fetched again, and what of it was
                # stored meanwhile is recognised as a duplicate.
                done_up_to = last_uid
                for uid, _size in chunk:
                    if uid in fetched and outcome.get(uid, _NOT_TRIED) is not None:
                        break
                    done_up_to = uid
                # Only what is committed is acknowledged on the server, and only then is the
                # progress written: a crash between the two fetches it again, as a duplicate.
                if stored:
                    if mailbox.after_import is AfterImport.MOVE and mailbox.move_to:
                        await connection.move(stored, mailbox.move_to)
                    else:
                        await connection.mark_seen(stored)
                if done_up_to != last_uid or stored:
                    async with self._sessions() as session:
                        await imap_service.record_progress(
                            session, mailbox, self._owner, uidvalidity=uidvalidity,
                            last_uid=done_up_to, imported=len(stored))
                        await session.commit()
                    last_uid = done_up_to
                if failure is not None:
                    raise DeliveryFailed(f"storing a mail failed ({_error_text(failure)}); it "
                                         "stays unread on the server and is tried again") \
                        from failure
        return last_uid

    async def _store_all(self, inbox_id: int, fetched: dict[int, bytes]
                         ) -> dict[int, BaseException | None]:
        """Store the chunk's mails, several at once (the group-commit writer then commits
        them together), in lanes: a mail waits for the earlier mails of its sender and of
        its thread (a reply must find the conversation its original opened). A lane stops
        at its first failure. Returns uid -> None (stored) or the error; untried mails
        are absent."""
        outcome: dict[int, BaseException | None] = {}
        limit = asyncio.Semaphore(STORE_CONCURRENCY)

        async def run_lane(lane: list[tuple[int, bytes]]) -> None:
            for uid, raw in lane:
                try:
                    async with limit:
                        await self._deliver(inbox_id, raw)
                except Exception as exc:
                    outcome[uid] = exc
                    return
                outcome[uid] = None

        await asyncio.gather(*(run_lane(lane) for lane in _lanes(sorted(fetched.items()))))
        return outcome


class DeliveryFailed(Exception):
    pass


_NOT_TRIED = Exception("not tried")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FROM = re.compile(rb"^from:[^\r\n]*?([^\s<>,;:\"]+@[^\s<>,;:\"]+)", re.IGNORECASE | re.MULTILINE)
_MESSAGE_ID = re.compile(rb"^message-id:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)
_REFERENCED = re.compile(rb"<([^>\s]+@[^>\s]+)>")
_REFERENCE_HEADERS = re.compile(rb"^(?:in-reply-to|references):((?:[^\r\n]|\r?\n[ \t])*)",
                                re.IGNORECASE | re.MULTILINE)


def _lanes(mails: list[tuple[int, bytes]]) -> list[list[tuple[int, bytes]]]:
    """Mails in UID order, grouped so that a mail follows every earlier mail of its sender
    and every earlier mail it refers to (In-Reply-To, References). A rough look at the
    headers is enough: a mistake costs only concurrency, never order within a lane."""
    lanes: list[list[tuple[int, bytes]]] = []
    lane_of: dict[bytes, int] = {}  # sender address or Message-ID -> lane
    for uid, raw in mails:
        match = _HEADER_END.search(raw)
        head = raw[: match.start()] if match else raw[:65536]
        keys: list[bytes] = []
        if (m := _FROM.search(head)) is not None:
            keys.append(b"from:" + m.group(1).lower())
        for refs in _REFERENCE_HEADERS.findall(head):
            keys.extend(b"id:" + ref for ref in _REFERENCED.findall(refs))
        joined = sorted({lane_of[k] for k in keys if k in lane_of})
        if not joined:
            lanes.append([])
            index = len(lanes) - 1
        else:
            # Several earlier lanes meet here: merge them into the first, in UID order.
            index = joined[0]
            for other in joined[1:]:
                lanes[index] = sorted(lanes[index] + lanes[other], key=lambda item: item[0])
                lanes[other] = []
                for key, value in list(lane_of.items()):
                    if value == other:
                        lane_of[key] = index
        lanes[index].append((uid, raw))
        if (m := _MESSAGE_ID.search(head)) is not None:
            keys.append(b"id:" + m.group(1))
        for key in keys:
            lane_of[key] = index
    return [lane for lane in lanes if lane]


def _chunks(pending: list[tuple[int, int]], limit: int) -> list[list[tuple[int, int]]]:
    chunks: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    size_sum = 0
    for uid, size in pending:
        counted = size if size <= limit else 0
        if current and (len(current) >= CHUNK_MESSAGES or size_sum + counted > CHUNK_BYTES):
            chunks.append(current)
            current, size_sum = [], 0
        current.append((uid, size))
        size_sum += counted
    if current:
        chunks.append(current)
    return chunks


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ImapError | DeliveryFailed) else f"{type(exc).__name__}: {text}"
