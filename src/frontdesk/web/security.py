"""Web security: the session-signing key, CSRF tokens, the sign-in rate limiter and the
response headers every page carries.

The session is a signed cookie (Starlette's SessionMiddleware, itsdangerous). It holds who
is signed in, which workspace they act in, a fingerprint of their password hash (so a
password change signs out every other browser) and the per-session CSRF token.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import Headers
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frontdesk.config import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "frontdesk_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

# Only the web UI and the real-time socket (which browsers authenticate with the cookie)
# read the session; the REST API and intake never pay for parsing a cookie.
SESSION_PATHS = ("/app", "/api/v1/realtime")

# 'self' only: no inline script may run, so an injection that slips past autoescaping and
# nh3 still cannot execute. htmx is configured (base.html) not to need eval or inline styles.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


def load_secret_key(settings: Settings) -> str:
    """FRONTDESK_SECRET_KEY, else a key generated once into <data_dir>/secret.key.

    The file is created with O_EXCL and mode 0600 in one step, so two processes starting
    together agree on one key and no other local user can ever read it."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / "secret.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) < 32:
            raise RuntimeError(
                f"{path} holds no usable key; delete it to have a new one generated"
            ) from None
        return key
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    log.info("generated the web session key in %s", path)
    return key


def password_fingerprint(password_hash: str | None) -> str:
    """A short digest of the stored hash: when the password changes, every session that
    was signed in with the old one no longer matches and is signed out."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:20]


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


class WebMiddleware:
    """Session cookie and security headers, for the web paths only."""

    def __init__(self, app: ASGIApp, *, secret_key: str, max_age: int, https_only: bool) -> None:
        self.app = app
        self.with_session = SessionMiddleware(
            self._add_headers, secret_key=secret_key, session_cookie=SESSION_COOKIE,
            max_age=max_age, same_site="lax", https_only=https_only,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"].startswith(SESSION_PATHS):
            await self.with_session(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _add_headers(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                # Pages show one person's customers: never keep them in a shared cache.
                if b"cache-control" not in present and not scope["path"].startswith("/app/static"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def same_origin(headers: Headers, *, scheme: str, host: str) -> bool:
    """True when the request's Origin is this server (or the client sent none).

    A cookie-authenticated WebSocket must check this itself: browsers attach cookies to a
    cross-site WebSocket handshake in some configurations, and the socket has no CSRF token
    (cross-site WebSocket hijacking)."""
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser: it cannot be holding a victim's cookie
    ws_to_http = {"ws": "http", "wss": "https"}
    return origin.lower() == f"{ws_to_http.get(scheme, scheme)}://{host}".lower()


@dataclass
class _Window:
    failures: deque[float] = field(default_factory=deque)


class LoginRateLimiter:
    """Failed sign-ins per e-mail and per client address, in memory, sliding window.

    Per e-mail stops guessing one person's password from many addresses; per address stops
    one client trying many people. In memory means per process: with N web processes an
    attacker gets N times the budget, which is still far below what guessing needs."""

    def __init__(
        self, *, per_email: int = 5, per_ip: int = 20, window_seconds: float = 900
    ) -> None:
        self.per_email = per_email
        self.per_ip = per_ip
        self.window = window_seconds
        self._by_key: dict[str, _Window] = {}

    def _prune(self, key: str, now: float) -> deque[float]:
        window = self._by_key.setdefault(key, _Window())
        while window.failures and window.failures[0] <= now - self.window:
            window.failures.popleft()
        return window.failures

    def retry_after(self, email: str, ip: str, now: float | None = None) -> int:
        """Seconds until another attempt is allowed; 0 when it is allowed now."""
        now = time.monotonic() if now is None else now
        waits = [0.0]
        for key, limit in ((f"e:{email.lower()}", self.per_email), (f"i:{ip}", self.per_ip)):
            failures = self._prune(key, now)
            if len(failures) >= limit:
                waits.append(failures[len(failures) - limit] + self.window - now)
        return int(max(waits) + 0.999)

    def failed(self, email: str, ip: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._by_key) > 100_000:  # bounded memory under a spray of random e-mails
            self._by_key.clear()
        for key in (f"e:{email.lower()}", f"i:{ip}"):
            self._prune(key, now).append(now)

    def succeeded(self, email: str) -> None:
        self._by_key.pop(f"e:{email.lower()}", None)
