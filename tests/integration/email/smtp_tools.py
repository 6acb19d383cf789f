"""A recording SMTP server (aiosmtpd, in a thread) standing in for the outbound relay;
optionally with STARTTLS or implicit TLS, and AUTH with one user name and password."""

from __future__ import annotations

import email
import email.policy
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from frontdesk.channels.email.smtp_server import SmtpServer
from frontdesk.runtime import Runtime
from tests.processes import free_port


@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass(frozen=True)
class Login:
    mechanism: str
    username: str
    password: str
    encrypted: bool  # the connection was TLS when the credentials arrived


@dataclass
class _Recorder:
    received: list[Captured] = field(default_factory=list)
    answer: str = "250 2.0.0 OK"
    logins: list[Login] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.answer.startswith("250"):
            content = envelope.original_content or envelope.content
            assert isinstance(content, bytes)
            self.received.append(Captured(str(envelope.mail_from), list(envelope.rcpt_tos),
                                          content))
        return self.answer


class _Authenticator:
    """aiosmtpd's AUTH callback: records every attempt, accepts one user name and password
    (a refusal is aiosmtpd's own `535 5.7.8 Authentication credentials invalid`)."""

    def __init__(self, recorder: _Recorder, username: str, password: str) -> None:
        self._recorder, self._username, self._password = recorder, username, password

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: object) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = Login(mechanism, auth_data.login.decode(), auth_data.password.decode(),
                      encrypted=session.ssl is not None or (
                          server.transport is not None
                          and server.transport.get_extra_info("ssl_object") is not None))
        self._recorder.logins.append(login)
        accepted = (login.username, login.password) == (self._username, self._password)
        return AuthResult(success=accepted, handled=False)


class RecordingRelay:
    """`with RecordingRelay() as relay:` ... `relay.received`; `relay.answer` changes what
    DATA is answered (e.g. a 4xx or 5xx).

    `starttls`: the server context for STARTTLS, required before MAIL and AUTH;
    `implicit_tls`: the whole connection is TLS (port 465 style); `credentials`: AUTH is
    offered (only over TLS) and required, `mechanisms` limits it (e.g. only "LOGIN")."""

    def __init__(self, *, starttls: ssl.SSLContext | None = None,
                 implicit_tls: ssl.SSLContext | None = None,
                 credentials: tuple[str, str] | None = None,
                 mechanisms: Sequence[str] = ("LOGIN", "PLAIN")) -> None:
        self.port = free_port()
        self._recorder = _Recorder()
        options: dict[str, Any] = {}
        if starttls is not None:
            options.update(tls_context=starttls, require_starttls=True)
        if credentials is not None:
            options.update(
                authenticator=_Authenticator(self._recorder, *credentials),
                # (aiosmtpd counts only STARTTLS as TLS for AUTH: not implicit TLS.)
                auth_required=True, auth_require_tls=implicit_tls is None,
                auth_exclude_mechanism=[m for m in ("LOGIN", "PLAIN") if m not in mechanisms])
        self._controller = Controller(self._recorder, hostname="127.0.0.1", port=self.port,
                                      ssl_context=implicit_tls, **options)

    @property
    def logins(self) -> list[Login]:
        return self._recorder.logins

    @property
    def received(self) -> list[Captured]:
        return self._recorder.received

    @property
    def answer(self) -> str:
        return self._recorder.answer

    @answer.setter
    def answer(self, value: str) -> None:
        self._recorder.answer = value

    def __enter__(self) -> RecordingRelay:
        self._controller.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._controller.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Captured]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} mails expected at the relay, "
                                     f"{len(self.received)} arrived")
            time.sleep(0.02)
        return self.received


@asynccontextmanager
async def running_smtp_server(runtime: Runtime, **options: Any) -> AsyncIterator[SmtpServer]:
    """Frontdesk's own SMTP server on a free loopback port, for the length of a test."""
    server = SmtpServer(runtime, "127.0.0.1", free_port(), **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextmanager
def replies_recorded(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingRelay]:
    """A recording relay that the runtime's outbound mail goes to (plain SMTP, no login)."""
    with RecordingRelay() as recording:
        monkeypatch.setattr(runtime.settings, "smtp_relay_host", "127.0.0.1")
        monkeypatch.setattr(runtime.settings, "smtp_relay_port", recording.port)
        monkeypatch.setattr(runtime.settings, "smtp_relay_security", "none")
        yield recording
