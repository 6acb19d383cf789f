"""The IMAP mailbox an e-mail inbox polls: where it is, how to sign in, and how far it got."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db.base import Base, BigId, created_at_column, id_column, utcnow, workspace_column


class TlsMode(enum.StrEnum):
    TLS = "tls"  # implicit TLS from the first byte (IMAPS, port 993)
    STARTTLS = "starttls"  # plain connection upgraded before anything is sent (port 143)


class AfterImport(enum.StrEnum):
    SEEN = "seen"  # flag \Seen and leave it where it is
    MOVE = "move"  # move it to `move_to`


class ImapMailbox(Base):
    """One per e-mail inbox at most. `last_uid` only ever means something together with
    `uidvalidity`: when the server announces another UIDVALIDITY, UIDs were reassigned and
    fetching starts again from the first message (Message-ID de-duplication keeps what is
    already stored from being stored twice). Never resumed by date: dates lie, and a
    mailbox left unpolled for longer than a search window would lose mail."""

    __tablename__ = "imap_mailboxes"

    id: Mapped[int] = id_column()
    workspace_id: Mapped[int] = workspace_column()
    inbox_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("inboxes.id", ondelete="CASCADE"), unique=True
    )
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    tls: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(320))
    # Fernet ciphertext (core.secrets); the plaintext is never stored, returned or logged.
    password_encrypted: Mapped[str] = mapped_column(Text)
    mailbox: Mapped[str] = mapped_column(String(200), default="INBOX")
    after_import: Mapped[str] = mapped_column(String(16), default=AfterImport.SEEN.value)
    move_to: Mapped[str | None] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped by every change of the settings above: a running poller notices and reconnects.
    config_version: Mapped[int] = mapped_column(Integer, default=1)

    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)  # in a row: drives the backoff
    last_polled_at: Mapped[datetime | None]
    imported_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # Mail over the size limit, left on the server unread (the newest one is named).
    refused_count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_refused: Mapped[str | None] = mapped_column(Text)

    # The lease: which process polls this mailbox, until when. One poller per mailbox
    # across the cluster, on SQLite and PostgreSQL alike (a row, not an advisory lock that
    # would pin a pooled connection for as long as the poller runs).
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[datetime | None]

    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
