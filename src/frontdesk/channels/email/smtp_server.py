"""The inbound SMTP server (aiosmtpd), run by `frontdesk serve` on FRONTDESK_SMTP_PORT.

It runs on the application's own event loop (not aiosmtpd's threaded Controller): the
mail goes straight into the group-commit writer of this process.

What the sending MTA is told, and why:
- RCPT for an address no inbox owns: 550 (permanent: the MTA bounces it to its sender,
  rather than retrying for days).
- SIZE is advertised; a MAIL FROM announcing more is refused with 552 before any data is
  sent, and DATA longer than the limit is refused too (aiosmtpd stops keeping it).
- 250 only once `receive_email` returned, i.e. after the transaction that stored the mail
  (or its quarantine record) committed: a crash before that leaves the MTA without an
  answer, so it delivers again, and the Message-ID key makes the repeat store nothing.
- Any failure to store: 451 (temporary: the MTA retries later), never 250.
- With FRONTDESK_SMTP_TLS_CERT and _KEY, STARTTLS is advertised and accepted; plain
  delivery still is (opportunistic TLS, as MX servers do), unless FRONTDESK_SMTP_REQUIRE_TLS:
  then MAIL (and anything but EHLO, NOOP, QUIT, STARTTLS) before STARTTLS gets 530.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from frontdesk.channels.email.service import base_address, receive_into_inbox, route_recipients
from frontdesk.config import Settings

if TYPE_CHECKING:
    from frontdesk.runtime import Runtime

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 100
MAX_SESSIONS = 200  # concurrent SMTP connections; more are told 421 (try again later)


class SmtpTlsSettingsError(ValueError):
    """The SMTP server's TLS settings cannot work; the message is one sentence for the
    operator (`serve` refuses to start with it)."""


def smtp_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server-side TLS context of FRONTDESK_SMTP_TLS_CERT/_KEY, or None when neither is
    set. Raises SmtpTlsSettingsError, saying what is wrong, for half a pair, an unreadable
    file, files that are not a matching PEM certificate and key, or
    FRONTDESK_SMTP_REQUIRE_TLS without them."""
    cert, key = settings.smtp_tls_cert, settings.smtp_tls_key
    if cert is None and key is None:
        if settings.smtp_require_tls:
            raise SmtpTlsSettingsError(
                "FRONTDESK_SMTP_REQUIRE_TLS is on but the SMTP server has no certificate: "
                "set FRONTDESK_SMTP_TLS_CERT and FRONTDESK_SMTP_TLS_KEY")
        return None
    if cert is None or key is None:
        given, missing = (("FRONTDESK_SMTP_TLS_KEY", "FRONTDESK_SMTP_TLS_CERT") if cert is None
                          else ("FRONTDESK_SMTP_TLS_CERT", "FRONTDESK_SMTP_TLS_KEY"))
        raise SmtpTlsSettingsError(f"{given} is set but {missing} is not: the SMTP server "
                                   "needs both for STARTTLS")
    for name, path in (("FRONTDESK_SMTP_TLS_CERT", cert), ("FRONTDESK_SMTP_TLS_KEY", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise SmtpTlsSettingsError(
                f"{name} names {str(path)!r}, which cannot be read: "
                f"{exc.strerror or exc}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        detail = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        raise SmtpTlsSettingsError(
            f"The SMTP server's certificate {str(cert)!r} and key {str(key)!r} do not load "
            f"as a matching PEM certificate and private key ({detail})") from None
    return context


class InboundMailHandler:
    """aiosmtpd handler hooks: RCPT checks the address, DATA stores the mail."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        try:
            routes = await route_recipients(self.runtime, [address])
        except Exception:
            log.exception("SMTP: looking up the recipient %r failed", address)
            return "451 4.3.0 Temporary failure; try again later"
        if not routes:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):  # only with decode_data=True, which we never set
            raw = raw.encode("utf-8", "surrogateescape")
        if not isinstance(raw, bytes):
            return "554 5.6.0 No message"
        try:
            routes = await route_recipients(self.runtime, envelope.rcpt_tos)
            if not routes:  # the inbox was deleted between RCPT and DATA
                return "550 5.1.1 No such mailbox here"
            for route in routes:
                recipients = [r for r in envelope.rcpt_tos
                              if base_address(r) in route.addresses]
                await receive_into_inbox(self.runtime, route, raw, envelope_recipients=recipients,
                                    source="smtp", envelope_sender=envelope.mail_from)
        except Exception:
            log.exception("SMTP: storing a mail from %r failed; answered 451",
                          envelope.mail_from)
            return "451 4.3.0 Could not store the message; try again later"
        return "250 2.0.0 Message accepted"


class _CountedSMTP(SMTP):
    """aiosmtpd's session, counted: a flood of idle connections must not exhaust the
    process (each holds a socket and a task for up to the timeout)."""

    def __init__(self, sessions: set[SMTP], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sessions = sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)


class _Busy(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(b"421 4.3.2 Too many connections; try again later\r\n")
        transport.close()


class SmtpServer:
    def __init__(self, runtime: Runtime, host: str, port: int, *,
                 max_sessions: int = MAX_SESSIONS, tls_context: ssl.SSLContext | None = None,
                 require_tls: bool = False) -> None:
        if require_tls and tls_context is None:
            raise SmtpTlsSettingsError("Requiring STARTTLS needs a TLS context")
        self.runtime = runtime
        self.host = host
        self.port = port
        self.max_sessions = max_sessions
        self.tls_context = tls_context
        self.require_tls = require_tls
        self._sessions: set[SMTP] = set()
        self._server: asyncio.Server | None = None

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    @property
    def bound_port(self) -> int:
        """The port actually listened on (the configured one, or the one the system
        picked for port 0 in `start(port=0)` style tests)."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        handler = InboundMailHandler(self.runtime)
        limit = self.runtime.settings.email_max_message_bytes
        hostname = socket.gethostname() or "frontdesk"

        def protocol() -> Any:
            if len(self._sessions) >= self.max_sessions:
                return _Busy()
            return _CountedSMTP(self._sessions, handler, data_size_limit=limit,
                                enable_SMTPUTF8=True, decode_data=False, hostname=hostname,
                                ident="Frontdesk ESMTP", timeout=120,
                                tls_context=self.tls_context,
                                require_starttls=self.require_tls)

        # reuse_port: several `frontdesk serve` processes on one host share the port (the
        # kernel spreads connections over them), as they share the HTTP port behind a
        # balancer; each answers 250 only after its own commit.
        self._server = await asyncio.get_running_loop().create_server(
            protocol, host=self.host, port=self.port, reuse_port=self.port != 0)
        log.info("SMTP server listening on %s:%d (%s)", self.host, self.bound_port,
                 "STARTTLS required" if self.require_tls
                 else "STARTTLS offered" if self.tls_context is not None else "no TLS")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Sessions in the middle of DATA finish (or time out) before the writer stops.
            try:
                await asyncio.wait_for(self._server.wait_closed(), timeout=10)
            except TimeoutError:
                log.warning("SMTP sessions still open at shutdown; they are cut off")
            self._server = None


async def start_smtp_server(runtime: Runtime,
                            tls_context: ssl.SSLContext | None = None) -> SmtpServer | None:
    """The SMTP server of FRONTDESK_SMTP_HOST/PORT, started; None when the port is 0.
    `tls_context`: the one `smtp_tls_context` made (made here when not given)."""
    settings = runtime.settings
    if not settings.smtp_port:
        return None
    if tls_context is None:
        tls_context = smtp_tls_context(settings)
    server = SmtpServer(runtime, settings.smtp_host, settings.smtp_port,
                        tls_context=tls_context, require_tls=settings.smtp_require_tls)
    await server.start()
    return server
