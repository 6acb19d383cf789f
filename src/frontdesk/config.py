"""Settings, read once from FRONTDESK_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRONTDESK_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Where the SQLite file and files live")
    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means an SQLite file under data_dir"
    )
    redis_url: str | None = Field(
        default=None, description="Redis for cross-process real-time fan-out; unset: in-process"
    )
    redis_prefix: str = Field(
        default="frontdesk",
        description="Namespace of Frontdesk's Redis keys and channels: installations (or test "
        "runs) sharing one Redis must each have their own, or their agents hear each other's "
        "events (workspace ids of different databases collide)",
    )
    embedded_worker: bool = Field(
        default=True,
        description="Run the event dispatcher and webhook delivery inside `serve`. "
        "Turn off when `frontdesk worker` processes do the work.",
    )
    webhooks_allow_private: bool = Field(
        default=False, description="Allow webhook URLs on loopback/private networks (tests, LAN)"
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, description="Limit for one delivery attempt, name lookup included"
    )
    webhook_max_attempts: int = Field(
        default=30, description="Attempts before a delivery is given up (about a day of retries)"
    )
    webhook_retry_base_seconds: float = Field(
        default=15.0, description="First retry delay ceiling; doubles per attempt (full jitter)"
    )
    webhook_retry_max_delay_seconds: float = Field(
        default=3600.0, description="Ceiling of any single retry delay"
    )
    intake_max_batch: int = 512
    intake_writers: int = Field(
        default=1,
        description="Group-commit writer connections for intake. One, on either database: a "
        "batch then takes every message that queued meanwhile and costs a few statements "
        "(see docs/performance.md); on PostgreSQL with many cores more may help. Each "
        "sender's messages always go through the same one.",
    )
    intake_gather_ms: float | None = Field(
        default=None,
        description="Under load, when a writer is about to start a batch with fewer than "
        "FRONTDESK_INTAKE_GATHER_UNITS messages, it first waits this long for more (unset: 3 "
        "on PostgreSQL, 0 on SQLite). On PostgreSQL every statement and commit of a batch "
        "has a fixed cost, so half-full batches cost nearly twice as much per message: with "
        "two serve processes 3 ms raised intake by half (docs/performance.md). Never on a "
        "writer that was idle: a lone message starts at once.",
    )
    intake_gather_units: int = Field(
        default=16, description="See FRONTDESK_INTAKE_GATHER_MS: a batch this big starts at once"
    )
    gil_switch_interval_ms: float = Field(
        default=1.0,
        description="How long a Python thread may hold the GIL while another waits for it "
        "(sys.setswitchinterval; Python's default is 5 ms, 0 keeps it). The intake writer's "
        "thread waits for the GIL after every database round trip while the event loop "
        "serves requests: 1 ms measured 12 % more messages/s on PostgreSQL "
        "(docs/performance.md).",
    )
    push_subject: str = Field(
        default="mailto:frontdesk@localhost",
        description="VAPID contact the push services see (a mailto: or https: URL of the "
        "installation's operator)",
    )
    push_allow_private: bool = Field(
        default=False, description="Allow Web Push endpoints on loopback/private networks "
        "(tests, a self-hosted push service on the LAN)",
    )
    log_level: str = "INFO"
    # IMAP polling of e-mail inboxes (docs/email.md). Each mailbox is polled by one
    # process of the cluster at a time (a lease row), inside `serve` or `worker`.
    imap_allow_private: bool = Field(
        default=False, description="Allow IMAP servers on loopback/private networks (tests, LAN)"
    )
    imap_ca_file: Path | None = Field(
        default=None, description="Extra CA certificates (PEM) trusted for IMAP TLS"
    )
    imap_poll_seconds: float = Field(
        default=60.0, gt=0, description="How often a mailbox without IDLE is checked"
    )
    imap_idle_seconds: float = Field(
        default=300.0, gt=0, description="IDLE is renewed (and the mailbox checked) this often"
    )
    imap_scan_seconds: float = Field(
        default=10.0, gt=0, description="How often a process looks for mailboxes nobody polls"
    )
    imap_lease_seconds: float = Field(
        default=120.0, ge=3, description="How long a poller holds its mailbox without renewing; "
        "after a crash another process takes over then"
    )
    imap_timeout_seconds: float = Field(default=30.0, gt=0, description="Limit of one IMAP step")
    imap_max_backoff_seconds: float = Field(
        default=900.0, gt=0, description="Ceiling of the wait after repeated connection errors"
    )
    # E-mail channel (docs/email.md). Inbound: the built-in SMTP server; outbound: a relay.
    smtp_host: str = Field(default="127.0.0.1", description="Address the SMTP server binds")
    smtp_port: int = Field(
        default=2525, ge=0, le=65535, description="Port of the inbound SMTP server; 0: none"
    )
    smtp_tls_cert: Path | None = Field(
        default=None, description="Certificate chain (PEM) of the SMTP server; with "
        "smtp_tls_key it offers STARTTLS"
    )
    smtp_tls_key: Path | None = Field(
        default=None, description="Private key (PEM) of smtp_tls_cert"
    )
    smtp_require_tls: bool = Field(
        default=False, description="Refuse mail (530) from clients that did not STARTTLS first; "
        "off: TLS is offered, plain delivery still accepted (as MX servers do)"
    )
    email_max_message_bytes: int = Field(
        default=40 * 1024 * 1024, ge=1024,
        description="Largest mail accepted (SMTP SIZE); larger is refused before it is read",
    )
    email_max_attachment_bytes: int = Field(
        default=25 * 1024 * 1024, ge=0,
        description="Largest attachment stored; larger ones are listed but not kept",
    )
    email_rate_limit_count: int = Field(
        default=30, ge=1,
        description="Mails one sender may open in an inbox per window; the rest is "
        "quarantined (kept, re-processable), not lost",
    )
    email_rate_limit_window_seconds: int = Field(default=600, ge=1)
    email_auto_reply_interval_hours: float = Field(
        default=96.0, gt=0,
        description="An inbox's automatic acknowledgement goes to one sender at most once "
        "per this many hours (RFC 3834)",
    )
    smtp_relay_host: str | None = Field(
        default=None, description="Outbound SMTP relay; unset: replies stay pending"
    )
    smtp_relay_port: int = Field(default=587, ge=1, le=65535)
    smtp_relay_username: str | None = None
    smtp_relay_password: str | None = None
    smtp_relay_security: Literal["none", "starttls", "tls"] = Field(
        default="starttls", description="none | starttls | tls (implicit TLS, port 465)"
    )
    smtp_relay_ca_file: Path | None = Field(
        default=None, description="Extra CA certificates (PEM) trusted for the relay's TLS, "
        "besides the system's (a relay with a private CA)"
    )
    smtp_relay_timeout_seconds: float = Field(default=30.0, gt=0)
    email_send_max_attempts: int = Field(
        default=10, ge=1, description="Attempts before an outbound mail is marked failed"
    )
    email_retry_base_seconds: float = Field(
        default=30.0, ge=0, description="First retry delay ceiling; doubles per attempt"
    )
    upload_retention_hours: float = Field(
        default=24.0, gt=0,
        description="Files agents upload for a reply and no message uses are deleted after "
        "this many hours; an upload id is good for as long",
    )
    # Web UI (agent workspace). The session cookie is signed with this key; unset, a key is
    # generated once into <data_dir>/secret.key (0600). Several web processes on several
    # hosts must share one key: set it explicitly there.
    secret_key: str | None = Field(
        default=None, description="Signs the web session cookie; unset: <data_dir>/secret.key"
    )
    session_max_age_seconds: int = Field(
        default=14 * 24 * 3600, description="A web sign-in lasts this long (absolute)"
    )
    secure_cookies: bool = Field(
        default=False, description="Mark the session cookie Secure (set when served over HTTPS)"
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'frontdesk.db').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
