"""A recording SMTP server (aiosmtpd, in a thread) standing in for the outbound relay."""

from __future__ import annotations

import email
import email.policy
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

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


@dataclass
class _Recorder:
    received: list[Captured] = field(default_factory=list)
    answer: str = "250 2.0.0 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.answer.startswith("250"):
            content = envelope.original_content or envelope.content
            assert isinstance(content, bytes)
            self.received.append(Captured(str(envelope.mail_from), list(envelope.rcpt_tos),
                                          content))
        return self.answer


class RecordingRelay:
    """`with RecordingRelay() as relay:` ... `relay.received`; `relay.answer` changes what
    DATA is answered (e.g. a 4xx or 5xx)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._recorder = _Recorder()
        self._controller = Controller(self._recorder, hostname="127.0.0.1", port=self.port)

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
