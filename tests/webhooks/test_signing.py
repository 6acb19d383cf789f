"""Signatures: HMAC-SHA256 over "<timestamp>.<body>", fresh timestamps only."""

from __future__ import annotations

import hashlib
import hmac

from frontdesk.webhooks.signing import new_secret, sign, signed_headers, verify_signature

SECRET = "whsec_test"
BODY = b'{"id":1,"type":"message.created"}'


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, BODY) == f"sha256={expected}"


def test_signed_headers_verify_with_the_secret() -> None:
    headers = signed_headers(SECRET, event_type="message.created", delivery_id=7, body=BODY)
    assert headers["X-Frontdesk-Event"] == "message.created"
    assert headers["X-Frontdesk-Delivery"] == "7"
    assert verify_signature(SECRET, headers["X-Frontdesk-Timestamp"], BODY,
                            headers["X-Frontdesk-Signature"])


def test_a_changed_body_a_wrong_secret_or_a_moved_timestamp_do_not_verify() -> None:
    signature = sign(SECRET, 1700000000, BODY)
    now = 1700000000.0
    assert verify_signature(SECRET, "1700000000", BODY, signature, now=now)
    assert not verify_signature(SECRET, 1700000000, BODY + b" ", signature, now=now)
    assert not verify_signature("whsec_other", 1700000000, BODY, signature, now=now)
    assert not verify_signature(SECRET, 1700000001, BODY, signature, now=now)
    assert not verify_signature(SECRET, "not-a-number", BODY, signature, now=now)
    assert not verify_signature(SECRET, 1700000000, BODY, "sha256=00", now=now)


def test_stale_and_far_future_timestamps_are_refused() -> None:
    signature = sign(SECRET, 1700000000, BODY)
    assert verify_signature(SECRET, 1700000000, BODY, signature, now=1700000000 + 299)
    assert not verify_signature(SECRET, 1700000000, BODY, signature, now=1700000000 + 301)
    assert not verify_signature(SECRET, 1700000000, BODY, signature, now=1700000000 - 301)
    assert verify_signature(SECRET, 1700000000, BODY, signature, tolerance=3600,
                            now=1700000000 + 3000)


def test_secrets_are_random_and_long() -> None:
    a, b = new_secret(), new_secret()
    assert a != b
    assert a.startswith("whsec_")
    assert len(a) >= 40
