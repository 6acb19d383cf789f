"""Web Push on assignment: the agent's browsers hear about a conversation assigned to
them, encrypted so only that browser can read it and signed with the server's VAPID key.

The push service is a local stand-in (tests/webhooks/receiver.py, a real HTTP server on
127.0.0.1) speaking the documented contract of RFC 8030 (an encrypted POST with `TTL`,
`Urgency`, `Topic`; 201 on success, 404/410 when the subscription is gone) with RFC 8291
encryption and RFC 8292 VAPID authorization. Browsers' real push services (FCM, Mozilla,
Apple) cannot be reached from here. The test plays the browser: it makes the P-256 key pair
and auth secret a browser would, and decrypts what arrives."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import http_ece
import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sqlalchemy import select

from frontdesk.accounts.models import Role, User
from frontdesk.notifications.models import PushSubscription
from frontdesk.notifications.webpush import (
    application_server_key,
    b64url,
    b64url_decode,
    vapid_private_key,
)
from frontdesk.runtime import Runtime
from frontdesk.web.security import load_secret_key
from tests.factories import Factory, Member, Workspace
from tests.webhooks.receiver import Receiver, Reply, eventually


class Browser:
    """What a browser keeps for one push subscription: its key pair and auth secret."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def subscription(self) -> dict[str, Any]:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}

    def read(self, body: bytes) -> dict[str, Any]:
        plain = http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth,
                                 version="aes128gcm")
        return dict(json.loads(plain))


@pytest.fixture
async def push_service() -> Any:
    service = Receiver()
    service.answer(then=Reply(status=201, body=b""))
    await service.start()
    yield service
    await service.stop()


async def _subscribe(api: httpx.AsyncClient, member: Member, browser: Browser) -> int:
    r = await api.post("/api/v1/push/subscriptions", headers=member.headers,
                       json=browser.subscription())
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _verify_vapid(authorization: str, secret_key: str, endpoint: str) -> dict[str, Any]:
    """Check the JWT as a push service does: ES256 over header.claims with the key in `k`."""
    assert authorization.startswith("vapid ")
    fields = dict(part.strip().split("=", 1) for part in authorization[6:].split(","))
    assert fields["k"] == application_server_key(secret_key)
    header, claims, signature = fields["t"].split(".")
    raw = b64url_decode(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    vapid_private_key(secret_key).public_key().verify(
        der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    decoded = json.loads(b64url_decode(claims))
    assert decoded["aud"] == endpoint.split("/hooks")[0]
    return dict(decoded)


async def test_a_conversation_assigned_to_an_agent_is_pushed_to_their_browser(
    factory: Factory, api: httpx.AsyncClient, runtime: Runtime, push_service: Receiver,
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    browser = Browser(push_service.url)
    await _subscribe(api, agent, browser)
    conversation = await factory.conversation(ws, name="Olga Petrova", identifier="olga-1")

    await factory.assign(ws, conversation["conversation_id"], agent)

    [request] = await push_service.wait_for(1)
    assert request.method == "POST"
    assert request.headers["content-encoding"] == "aes128gcm"
    assert int(request.headers["ttl"]) > 0
    assert request.headers["topic"] == f"conversation-{conversation['conversation_id']}"
    claims = _verify_vapid(request.headers["authorization"],
                           load_secret_key(runtime.settings), push_service.url)
    assert claims["sub"].startswith("mailto:")
    message = browser.read(request.body)
    assert message["type"] == "conversation.assigned"
    assert message["url"] == (f"/app/conversations/{conversation['conversation_id']}"
                              f"?ws={ws.id}")
    assert "Olga Petrova" in message["body"]
    assert message["title"]

    async def recorded() -> bool:
        async with runtime.read_sessions() as session:
            row = (await session.execute(select(PushSubscription).where(
                PushSubscription.user_id == agent.user_id))).scalar_one()
            return row.last_sent_at is not None
    await eventually(recorded, what="the send recorded")


async def test_the_notification_speaks_the_agents_language(
    factory: Factory, api: httpx.AsyncClient, runtime: Runtime, push_service: Receiver,
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    async with runtime.sessions() as session:
        user = await session.get(User, agent.user_id)
        assert user is not None
        user.locale = "ar"
        await session.commit()
    browser = Browser(push_service.url)
    await _subscribe(api, agent, browser)
    conversation = await factory.conversation(ws)
    await factory.assign(ws, conversation["conversation_id"], agent)
    [request] = await push_service.wait_for(1)
    message = browser.read(request.body)
    assert message["dir"] == "rtl" and message["lang"] == "ar"
    assert "محادثة" in message["title"]


async def test_taking_a_conversation_oneself_or_turning_notifications_off_pushes_nothing(
    factory: Factory, api: httpx.AsyncClient, runtime: Runtime, push_service: Receiver,
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    quiet = await factory.api_member(ws, Role.AGENT)
    await _subscribe(api, agent, Browser(push_service.url))
    await _subscribe(api, quiet, Browser(push_service.url + "/quiet"))
    async with runtime.sessions() as session:
        user = await session.get(User, quiet.user_id)
        assert user is not None
        user.notify_assignments = False
        await session.commit()
    first = await factory.conversation(ws)
    r = await api.post(f"/api/v1/conversations/{first['conversation_id']}/assign",
                       headers=agent.headers, json={"assignee_id": agent.user_id})
    assert r.status_code == 200, r.text
    second = await factory.conversation(ws)
    await factory.assign(ws, second["conversation_id"], quiet)
    # A third assignment that does push proves the two before had their chance to.
    third = await factory.conversation(ws)
    await factory.assign(ws, third["conversation_id"], agent)
    requests = await push_service.wait_for(1)
    assert len(push_service.requests) == 1
    assert requests[0].headers["topic"] == f"conversation-{third['conversation_id']}"


async def test_a_subscription_the_push_service_says_is_gone_is_forgotten(
    factory: Factory, api: httpx.AsyncClient, runtime: Runtime, push_service: Receiver,
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    push_service.answer(Reply(status=410, body=b""))
    subscription_id = await _subscribe(api, agent, Browser(push_service.url))
    conversation = await factory.conversation(ws)
    await factory.assign(ws, conversation["conversation_id"], agent)
    await push_service.wait_for(1)

    async def forgotten() -> bool:
        r = await api.get("/api/v1/push/subscriptions", headers=agent.headers)
        return subscription_id not in [s["id"] for s in r.json()]
    await eventually(forgotten, what="the gone subscription deleted")


async def test_subscriptions_belong_to_their_agent(
    factory: Factory, api: httpx.AsyncClient, push_service: Receiver,
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    other = await factory.api_member(ws, Role.AGENT)
    mine = await _subscribe(api, agent, Browser(push_service.url))
    assert [s["id"] for s in (await api.get("/api/v1/push/subscriptions",
                                            headers=other.headers)).json()] == []
    r = await api.delete(f"/api/v1/push/subscriptions/{mine}", headers=other.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await api.delete(f"/api/v1/push/subscriptions/{mine}", headers=agent.headers)
    assert r.status_code == 204


async def test_the_same_browser_subscribing_again_is_one_subscription_of_the_last_agent(
    factory: Factory, api: httpx.AsyncClient, push_service: Receiver,
) -> None:
    """A shared computer: whoever signed in last gets its notifications, never both."""
    ws = await factory.api_workspace()
    first = await factory.api_member(ws, Role.AGENT)
    second = await factory.api_member(ws, Role.AGENT)
    browser = Browser(push_service.url + "/shared")
    one = await _subscribe(api, first, browser)
    two = await _subscribe(api, second, browser)
    assert one == two
    assert (await api.get("/api/v1/push/subscriptions", headers=first.headers)).json() == []


async def test_an_endpoint_on_an_internal_address_is_refused_without_the_setting(
    factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws: Workspace = await factory.api_workspace()
    monkeypatch.setattr(runtime.settings, "push_allow_private", False)
    body = Browser("https://169.254.169.254/latest/meta-data").subscription()
    r = await api.post("/api/v1/push/subscriptions", headers=ws.admin.headers, json=body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "unsafe_url"


def test_the_vapid_key_is_derived_from_the_installation_secret() -> None:
    key = application_server_key("a" * 48)
    assert key == application_server_key("a" * 48)
    assert key != application_server_key("b" * 48)
    raw = base64.urlsafe_b64decode(key + "=")
    assert len(raw) == 65 and raw[0] == 4  # an uncompressed P-256 point
