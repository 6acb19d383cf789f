"""The Web Push protocol, and nothing else: VAPID (RFC 8292) and message encryption
(RFC 8291, aes128gcm per RFC 8188), sent to the browser's push service (RFC 8030).

The server's VAPID key pair is derived from the installation's secret key (the one that
signs web sessions), so every process of an installation signs with the same key without
another file to create, share and back up. Changing the secret key changes the VAPID key:
push services then refuse our old subscriptions (403/404/410), we drop them, and each
browser subscribes again with the new key the next time its agent opens Frontdesk.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from py_vapid import Vapid02

from frontdesk.core.netguard import GuardedResponse, guarded_request

_PURPOSE = b"frontdesk/web-push-vapid/v1"
# The order of the P-256 group: a private key is a number from 1 to this minus one.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
TOKEN_LIFETIME_SECONDS = 12 * 3600  # RFC 8292: at most 24 h


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=4)
def vapid_private_key(secret_key: str) -> ec.EllipticCurvePrivateKey:
    seed = HKDF(algorithm=hashes.SHA256(), length=48, salt=None,
                info=_PURPOSE).derive(secret_key.encode())
    scalar = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def application_server_key(secret_key: str) -> str:
    """The public key browsers subscribe with (`applicationServerKey`), base64url."""
    public = vapid_private_key(secret_key).public_key()
    return b64url(public.public_bytes(serialization.Encoding.X962,
                                      serialization.PublicFormat.UncompressedPoint))


def vapid_authorization(secret_key: str, endpoint: str, subject: str,
                        now: float | None = None) -> str:
    """`Authorization: vapid t=<JWT>, k=<public key>` for one push service (its origin)."""
    parts = urlsplit(endpoint)
    claims = {"aud": f"{parts.scheme}://{parts.netloc}",
              "exp": int((now or time.time()) + TOKEN_LIFETIME_SECONDS), "sub": subject}
    signer = Vapid02(private_key=vapid_private_key(secret_key))
    return str(signer.sign(claims)["Authorization"])


def encrypt_for_browser(payload: bytes, p256dh: str, auth: str) -> bytes:
    """The body only the subscribing browser can read: aes128gcm with a fresh key pair
    and salt per message (the sender's public key travels in the body's header)."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    return bytes(http_ece.encrypt(
        payload, salt=os.urandom(16), private_key=ephemeral, dh=b64url_decode(p256dh),
        auth_secret=b64url_decode(auth), version="aes128gcm",
    ))


@dataclass(frozen=True)
class PushTarget:
    endpoint: str
    p256dh: str
    auth: str


async def send_push(
    target: PushTarget, message: dict[str, Any], *, secret_key: str, subject: str,
    allow_private: bool, ttl_seconds: int = 3600, urgency: str = "high",
    topic: str | None = None, limit_seconds: float = 10.0,
) -> GuardedResponse:
    """POST one encrypted message to the browser's push service. The endpoint is a URL the
    browser gave us, so it goes through the same SSRF guard as webhooks. A `topic`
    replaces an undelivered earlier message with the same topic (one per conversation)."""
    body = encrypt_for_browser(json.dumps(message, ensure_ascii=False).encode(),
                               target.p256dh, target.auth)
    headers = {
        "Authorization": vapid_authorization(secret_key, target.endpoint, subject),
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
        "TTL": str(ttl_seconds),
        "Urgency": urgency,
    }
    if topic:
        headers["Topic"] = topic
    return await guarded_request(target.endpoint, allow_private=allow_private, method="POST",
                                 headers=headers, content=body, limit_seconds=limit_seconds)
