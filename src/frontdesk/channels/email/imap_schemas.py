from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from frontdesk.core.inputs import InputModel

# A host name (letters, digits, hyphens, dots) or an IPv4/IPv6 literal: no scheme, no
# port, no user@, nothing a resolver would interpret in surprising ways.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})"
_HOST = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*\.?|\[?[0-9A-Fa-f:.]+\]?)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ImapSettingsIn(InputModel):
    """The IMAP mailbox an e-mail inbox fetches mail from. `password` may be left out to
    keep the stored one; it is never returned."""

    host: str = Field(min_length=1, max_length=253, examples=["imap.example.com"])
    port: int = Field(ge=1, le=65535, examples=[993])
    tls: Literal["tls", "starttls"] = Field(
        description="tls: implicit TLS (usually port 993); starttls: upgraded plain "
        "connection (usually 143). Plain-text IMAP is not offered.")
    username: str = Field(min_length=1, max_length=320)
    password: str | None = Field(default=None, min_length=1, max_length=1000)
    mailbox: str = Field(default="INBOX", min_length=1, max_length=200)
    enabled: bool = True
    after_import: Literal["seen", "move"] = Field(
        default="seen", description="After a mail is stored: flag it \\Seen, or move it to "
        "`move_to`")
    move_to: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip().lower()
        if not _HOST.match(value):
            raise ValueError("a host name or an IP address, without scheme, port or path")
        return value.strip("[]")

    @field_validator("username", "password", "mailbox", "move_to")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL.search(value):
            raise ValueError("must not contain control characters (CR, LF, ...)")
        return value

    @model_validator(mode="after")
    def _move_needs_a_target(self) -> ImapSettingsIn:
        if self.after_import == "move" and not self.move_to:
            raise ValueError("after_import 'move' needs the folder in `move_to`")
        if self.after_import == "move" and self.move_to == self.mailbox:
            raise ValueError("`move_to` must be another folder than `mailbox`")
        return self


class ImapSettingsOut(BaseModel):
    """Settings and state of an inbox's IMAP mailbox; never the password."""

    model_config = ConfigDict(from_attributes=True)

    inbox_id: int
    host: str
    port: int
    tls: str
    username: str
    mailbox: str
    enabled: bool
    after_import: str
    move_to: str | None
    uidvalidity: int | None
    last_uid: int
    last_error: str | None
    last_error_at: datetime | None
    last_polled_at: datetime | None
    imported_count: int = Field(description="Mails acknowledged on the server after their "
                                "commit (stored, recognised as duplicates, or quarantined)")
    refused_count: int
    last_refused: str | None
    polling: bool = Field(description="A process holds this mailbox's lease right now")
    updated_at: datetime
