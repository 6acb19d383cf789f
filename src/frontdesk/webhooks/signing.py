"""Webhook signatures: how a receiver knows a request came from us, unaltered and fresh.

    X-Frontdesk-Timestamp: 1767225600
    X-Frontdesk-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

The timestamp is inside the signed text, so it can't be changed without breaking the
signature; a receiver that refuses old timestamps (verify_signature does, by default
after 5 minutes) can't be fed a recorded request again later. docs/webhooks.md shows
receivers how to check it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

EVENT_HEADER = "X-Frontdesk-Event"
DELIVERY_HEADER = "X-Frontdesk-Delivery"
TIMESTAMP_HEADER = "X-Frontdesk-Timestamp"
SIGNATURE_HEADER = "X-Frontdesk-Signature"
SCHEME = "sha256="
DEFAULT_TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """256 random bits, URL-safe; the prefix makes a leaked one easy to recognise."""
    return "whsec_" + secrets.token_urlsafe(32)


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str, timestamp: int | str, body: str | bytes) -> str:
    """The X-Frontdesk-Signature value for this body at this timestamp."""
    message = f"{timestamp}.".encode() + _as_bytes(body)
    return SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str, *, event_type: str, delivery_id: int, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "User-Agent": "Frontdesk-Webhooks/1",
        EVENT_HEADER: event_type,
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
    }


def verify_signature(
    secret: str, timestamp: int | str, body: str | bytes, signature: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS, *, now: float | None = None,
) -> bool:
    """True when `signature` is ours for this timestamp and body, and the timestamp is
    within `tolerance` seconds of now (either way: clocks drift). Pass the raw body bytes
    exactly as received: re-serialized JSON will not match. Constant-time comparison."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        return False
    expected = sign(secret, ts, body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())
