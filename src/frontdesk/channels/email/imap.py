"""The IMAP protocol adapter: connect (SSRF-guarded, TLS verified), sign in, read a
mailbox by UID, flag or move what was stored, and wait for news with IDLE.

It knows IMAP and nothing about inboxes, conversations or the database: the poller
(`imap_poller`) decides what to fetch and when a message may be flagged.

Built on aioimaplib, with two things it lacks: connecting to an address we checked while
verifying the certificate of the name the admin typed (so a DNS answer that changes
between the check and the connection cannot point us inside), and STARTTLS.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import aioimaplib

from frontdesk.channels.email.imap_models import TlsMode
from frontdesk.core import netguard

log = logging.getLogger(__name__)
# aioimaplib logs every byte sent and received at DEBUG: whole mails (customers' data) and
# the LOGIN line, whose password it masks only when it needed no quoting. Never below INFO.
logging.getLogger("aioimaplib").setLevel(logging.INFO)

_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")


class ImapError(Exception):
    """The server could not be reached, refused us, or answered what we cannot use. The
    message is for `last_error`: it names the server and what went wrong, never a secret."""


class ImapRefused(ImapError):
    """Connecting there is not allowed (an internal address): retrying will not help."""


@dataclass(frozen=True)
class ImapEndpoint:
    host: str
    port: int
    tls: TlsMode
    username: str
    password: str = field(repr=False)
    mailbox: str = "INBOX"

    def __str__(self) -> str:
        return f"{self.username}@{self.host}:{self.port}/{self.mailbox}"


@dataclass(frozen=True)
class MailboxState:
    uidvalidity: int
    uidnext: int | None
    exists: int


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes


def tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """Certificates verified against the system's CAs (plus `ca_file`, for a server with a
    private CA), host names checked, TLS 1.2 at least."""
    return _tls_context(str(ca_file) if ca_file else None)


@lru_cache(maxsize=4)
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def quote_mailbox(name: str) -> str:
    """A mailbox name as an IMAP quoted string, in modified UTF-7 (RFC 3501 5.1.3)."""
    encoded = _modified_utf7(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _modified_utf7(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            import base64

            chunk = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(chunk).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


class _Client(aioimaplib.IMAP4):  # type: ignore[misc]
    """aioimaplib's client, connecting to one checked address while TLS verifies (and SNI
    names) the host the admin configured."""

    def __init__(self, address: str, port: int, *, context: ssl.SSLContext | None,
                 server_hostname: str, timeout: float, on_lost: Any) -> None:
        self._server_hostname = server_hostname
        super().__init__(host=address, port=port, timeout=timeout, conn_lost_cb=on_lost,
                         ssl_context=context)

    def create_client(self, host: str, port: int, loop: asyncio.AbstractEventLoop | None,
                      conn_lost_cb: Any = None, ssl_context: ssl.SSLContext | None = None
                      ) -> None:
        running = loop or asyncio.get_running_loop()
        self.protocol = aioimaplib.IMAP4ClientProtocol(running, conn_lost_cb)
        tls: dict[str, Any] = {}
        if ssl_context is not None:
            tls = {"ssl": ssl_context, "server_hostname": self._server_hostname}
        self._client_task = running.create_task(
            running.create_connection(lambda: self.protocol, host, port, **tls))


class ImapConnection:
    """One signed-in IMAP session with one mailbox selected."""

    def __init__(self, client: _Client, endpoint: ImapEndpoint, timeout: float) -> None:
        self._client = client
        self.endpoint = endpoint
        self._timeout = timeout
        self.lost = asyncio.Event()

    # --- opening --------------------------------------------------------------------------

    @classmethod
    async def open(cls, endpoint: ImapEndpoint, *, allow_private: bool,
                   context: ssl.SSLContext, step_seconds: float = 30.0) -> ImapConnection:
        """Resolve the host once, refuse internal addresses (unless allowed), connect to a
        checked address, secure the connection, sign in. Raises ImapError."""
        addresses = await _checked_addresses(endpoint, allow_private)
        failures: list[str] = []
        for address in addresses:
            lost = asyncio.Event()
            client = _Client(str(address), endpoint.port,
                             context=context if endpoint.tls is TlsMode.TLS else None,
                             server_hostname=endpoint.host, timeout=step_seconds,
                             on_lost=lambda _exc, lost=lost: lost.set())
            connection = cls(client, endpoint, step_seconds)
            connection.lost = lost
            try:
                await client.wait_hello_from_server()
            except ssl.SSLError as exc:
                await connection.close()
                raise ImapError(f"TLS with {endpoint.host}:{endpoint.port} failed: "
                                f"{exc.reason or exc}") from exc
            except (OSError, TimeoutError, aioimaplib.AioImapException) as exc:
                await connection.close()
                failures.append(f"{address}: {_describe(exc)}")
                continue
            try:
                if endpoint.tls is TlsMode.STARTTLS:
                    await connection._starttls(context)
                await connection._login()
            except BaseException:
                await connection.close()
                raise
            return connection
        raise ImapError(f"cannot connect to {endpoint.host}:{endpoint.port} "
                        f"({'; '.join(failures) or 'no address'})")

    async def _starttls(self, context: ssl.SSLContext) -> None:
        protocol = self._client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError(f"{self.endpoint.host} does not offer STARTTLS; "
                            "refusing to send the password in the clear")
        response = await self._call(protocol.execute(
            aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)))
        if response.result != "OK":
            raise ImapError(f"{self.endpoint.host} refused STARTTLS: {_text(response)}")
        loop = asyncio.get_running_loop()
        try:
            transport = await asyncio.wait_for(loop.start_tls(
                protocol.transport, protocol, context,
                server_hostname=self.endpoint.host), self._timeout)
        except ssl.SSLError as exc:
            raise ImapError(f"TLS with {self.endpoint.host}:{self.endpoint.port} failed: "
                            f"{exc.reason or exc}") from exc
        protocol.transport = transport
        # What the server said before TLS may have been forged: ask again (RFC 3501 6.2.1).
        protocol.capabilities = set()
        await self._call(protocol.capability())

    async def _login(self) -> None:
        try:
            response = await self._client.login(_quote(self.endpoint.username),
                                                self.endpoint.password)
        except (TimeoutError, aioimaplib.AioImapException) as exc:
            raise ImapError(f"signing in to {self.endpoint.host} failed: "
                            f"{_describe(exc)}") from exc
        if response.result != "OK":
            raise ImapError(f"{self.endpoint.host} refused the sign-in of "
                            f"{self.endpoint.username}: {_text(response)}")

    # --- reading --------------------------------------------------------------------------

    @property
    def supports_idle(self) -> bool:
        return bool(self._client.has_capability("IDLE"))

    @property
    def supports_move(self) -> bool:
        return bool(self._client.has_capability("MOVE"))

    async def select(self) -> MailboxState:
        name = quote_mailbox(self.endpoint.mailbox)
        response = await self._call(self._client.protocol.select(name))
        if response.result != "OK":
            raise ImapError(f"cannot open the mailbox {self.endpoint.mailbox!r}: "
                            f"{_text(response)}")
        uidvalidity = uidnext = None
        exists = 0
        for line in response.lines:
            if not isinstance(line, bytes):
                continue
            if (m := _UIDVALIDITY.search(line)) is not None:
                uidvalidity = int(m.group(1))
            elif (m := _UIDNEXT.search(line)) is not None:
                uidnext = int(m.group(1))
            elif line.endswith(b" EXISTS"):
                exists = int(line.split()[0])
        if uidvalidity is None:
            raise ImapError(f"{self.endpoint.host} gave no UIDVALIDITY for "
                            f"{self.endpoint.mailbox!r}; UIDs cannot be trusted")
        return MailboxState(uidvalidity, uidnext, exists)

    async def uids_after(self, last_uid: int) -> list[int]:
        """The UIDs above last_uid, ascending: one SEARCH answer line, however many."""
        response = await self._call(self._client.protocol.search(
            "UID", f"{last_uid + 1}:*", charset=None, by_uid=True))
        if response.result != "OK":
            raise ImapError(f"listing new mail failed: {_text(response)}")
        found: set[int] = set()
        for line in response.lines[:-1]:  # the last one is the completion text
            # aioimaplib hands the untagged "* SEARCH 1 2 3" over as b"1 2 3".
            words = line.split() if isinstance(line, bytes) else []
            if words[:1] == [b"SEARCH"]:
                words = words[1:]
            if words and all(word.isdigit() for word in words):
                found.update(int(word) for word in words)
        # "N:*" always names the last message, even when its UID is below N.
        return sorted(uid for uid in found if uid > last_uid)

    async def sizes(self, uids: Iterable[int]) -> list[tuple[int, int]]:
        """(uid, size) of these messages, in UID order; nothing is downloaded. Keep the
        set to a few hundred: aioimaplib recurses once per answer line it receives in one
        read, and a thousand lines at once overflow the stack."""
        wanted = sorted(set(uids))
        if not wanted:
            return []
        response = await self._call(self._client.uid(
            "fetch", _uid_set(wanted), "(UID RFC822.SIZE)"))
        if response.result != "OK":
            raise ImapError(f"reading the sizes of new mail failed: {_text(response)}")
        found: dict[int, int] = {}
        for line in response.lines:
            if not isinstance(line, bytes) or not _FETCH_START.match(line):
                continue
            uid, size = _UID.search(line), _SIZE.search(line)
            if uid is not None and size is not None:
                found[int(uid.group(1))] = int(size.group(1))
        return sorted((uid, size) for uid, size in found.items() if uid in set(wanted))

    async def fetch(self, uids: Iterable[int]) -> list[FetchedMail]:
        """The full source of these messages, without setting \\Seen (BODY.PEEK)."""
        wanted = sorted(set(uids))
        if not wanted:
            return []
        response = await self._call(self._client.uid(
            "fetch", _uid_set(wanted), "(UID BODY.PEEK[])"))
        if response.result != "OK":
            raise ImapError(f"fetching mail failed: {_text(response)}")
        mails: dict[int, bytes] = {}
        uid: int | None = None
        raw: bytes | None = None
        for line in response.lines:
            if isinstance(line, bytearray):
                raw = bytes(line)
                continue
            if _FETCH_START.match(line):
                if uid is not None and raw is not None:
                    mails[uid] = raw
                uid, raw = None, None
            if (m := _UID.search(line)) is not None:
                uid = int(m.group(1))
        if uid is not None and raw is not None:
            mails[uid] = raw
        return [FetchedMail(u, mails[u]) for u in wanted if u in mails]

    # --- after the mail is stored ---------------------------------------------------------

    async def mark_seen(self, uids: Iterable[int]) -> None:
        wanted = sorted(set(uids))
        if not wanted:
            return
        response = await self._call(self._client.uid(
            "store", _uid_set(wanted), "+FLAGS.SILENT", "(\\Seen)"))
        if response.result != "OK":
            raise ImapError(f"flagging mail as seen failed: {_text(response)}")

    async def move(self, uids: Iterable[int], to: str) -> None:
        wanted = sorted(set(uids))
        if not wanted:
            return
        target = quote_mailbox(to)
        if self.supports_move:
            response = await self._call(self._client.uid("move", _uid_set(wanted), target))
        else:  # RFC 6851 absent: copy, then flag \Seen (deleting is the admin's business)
            response = await self._call(self._client.uid("copy", _uid_set(wanted), target))
            if response.result == "OK":
                await self.mark_seen(wanted)
        if response.result != "OK":
            raise ImapError(f"moving mail to {to!r} failed: {_text(response)}")

    # --- waiting --------------------------------------------------------------------------

    async def wait_for_news(self, seconds: float) -> bool:
        """Wait up to `seconds` for the server to announce a change (IDLE). True when it
        did. A server without IDLE is simply waited for (the caller polls)."""
        if not self.supports_idle:
            await self._sleep_unless_lost(seconds)
            return False
        client = self._client
        try:
            idle = await asyncio.wait_for(client.idle_start(timeout=seconds), self._timeout)
        except (TimeoutError, aioimaplib.AioImapException) as exc:
            raise ImapError(f"IDLE failed: {_describe(exc)}") from exc
        news = False
        try:
            lost = asyncio.ensure_future(self.lost.wait())
            push = asyncio.ensure_future(client.wait_server_push(timeout=seconds + 5))
            done, _ = await asyncio.wait({lost, push}, return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()
            if push in done and push.exception() is None:
                lines = push.result()
                news = lines != aioimaplib.STOP_WAIT_SERVER_PUSH and any(
                    isinstance(x, bytes) and (x.endswith(b"EXISTS") or b"FETCH" in x)
                    for x in lines)
            else:
                push.cancel()
        finally:
            if self.lost.is_set():
                idle.cancel()
                raise ImapError(f"the connection to {self.endpoint.host} was lost")
            client.idle_done()
            try:
                await asyncio.wait_for(idle, self._timeout)
            except (TimeoutError, aioimaplib.AioImapException) as exc:
                raise ImapError(f"ending IDLE failed: {_describe(exc)}") from exc
        return news

    async def _sleep_unless_lost(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.lost.wait(), seconds)
        except TimeoutError:
            return
        raise ImapError(f"the connection to {self.endpoint.host} was lost")

    # --- closing --------------------------------------------------------------------------

    async def close(self) -> None:
        """Log out politely when possible; always drop the connection."""
        client = self._client
        try:
            if client.protocol is not None and client.protocol.state in ("AUTH", "SELECTED"):
                await asyncio.wait_for(client.logout(), 5)
        except Exception:  # noqa: S110 - closing a connection that is already broken
            pass
        finally:
            transport = getattr(client.protocol, "transport", None)
            if transport is not None:
                transport.close()
            task = getattr(client, "_client_task", None)
            if task is not None and not task.done():
                task.cancel()

    async def _call(self, pending: Any) -> Any:
        try:
            return await asyncio.wait_for(pending, self._timeout)
        except (TimeoutError, aioimaplib.AioImapException, OSError) as exc:
            if self.lost.is_set():
                raise ImapError(f"the connection to {self.endpoint.host} was lost") from exc
            raise ImapError(f"{self.endpoint.host}: {_describe(exc)}") from exc


async def _checked_addresses(endpoint: ImapEndpoint, allow_private: bool
                             ) -> tuple[netguard.IPAddress, ...]:
    try:
        addresses = await netguard.resolve(endpoint.host, endpoint.port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise ImapError(f"the host name {endpoint.host!r} does not resolve ({exc})") from exc
    if not addresses:
        raise ImapError(f"the host name {endpoint.host!r} has no IP address")
    if not allow_private:
        for address in addresses:  # every one: we may connect to any of them
            why = netguard.internal_reason(address)
            if why is not None:
                raise ImapRefused(f"{endpoint.host}: {why}; IMAP servers on internal networks "
                                  "are refused (FRONTDESK_IMAP_ALLOW_PRIVATE=1 allows them)")
    return addresses


async def check_host(host: str, port: int, allow_private: bool) -> None:
    """Raises ImapRefused for an internal address, ImapError when the name does not
    resolve; connects to nothing."""
    await _checked_addresses(ImapEndpoint(host, port, TlsMode.TLS, "", ""), allow_private)


def _uid_set(uids: list[int]) -> str:
    """1,2,3,7 -> "1:3,7": short commands even for thousands of messages."""
    ranges: list[str] = []
    start = previous = uids[0]
    for uid in uids[1:]:
        if uid == previous + 1:
            previous = uid
            continue
        ranges.append(f"{start}:{previous}" if previous != start else str(start))
        start = previous = uid
    ranges.append(f"{start}:{previous}" if previous != start else str(start))
    return ",".join(ranges)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(response: Any) -> str:
    lines = [x.decode("utf-8", "replace") for x in response.lines if isinstance(x, bytes)]
    return (lines[-1] if lines else response.result)[:300]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc) or type(exc).__name__
    return text[:300]
