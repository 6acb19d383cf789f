"""The webhook subscription API: admins only, per workspace, URLs checked by the SSRF guard."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.core.activity import ActivityEntry
from frontdesk.core.netguard import UnsafeURL
from frontdesk.runtime import Runtime
from frontdesk.webhooks import service
from frontdesk.webhooks.models import WebhookSubscription
from frontdesk.webhooks.schemas import WebhookCreate
from tests.factories import Factory, Workspace

URL = "http://127.0.0.1:9/hook"  # allowed: the test app runs with webhooks_allow_private


async def create(api: httpx.AsyncClient, ws: Workspace, **body: object) -> dict[str, object]:
    r = await api.post("/api/v1/webhooks", headers=ws.admin.headers,
                       json={"url": URL, "events": ["message.created"], **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_creating_a_webhook_answers_201_with_its_id_and_secret(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.workspace()
    r = await api.post("/api/v1/webhooks", headers=ws.admin.headers, json={
        "url": URL, "events": ["message.created", "conversation.created"],
        "description": "CRM sync"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert isinstance(body["id"], int)
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["message.created", "conversation.created"]
    assert body["active"] is True
    assert body["description"] == "CRM sync"


async def test_the_secret_is_shown_only_at_creation(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.workspace()
    created = await create(api, ws)
    one = await api.get(f"/api/v1/webhooks/{created['id']}", headers=ws.admin.headers)
    many = await api.get("/api/v1/webhooks", headers=ws.admin.headers)
    assert one.status_code == 200
    assert "secret" not in one.json()
    assert [w["id"] for w in many.json()] == [created["id"]]
    assert "secret" not in many.json()[0]


async def test_a_webhook_can_be_changed_and_deleted(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.workspace()
    created = await create(api, ws)
    path = f"/api/v1/webhooks/{created['id']}"
    r = await api.patch(path, headers=ws.admin.headers,
                        json={"events": ["*"], "active": False, "description": "paused"})
    assert r.status_code == 200, r.text
    assert (r.json()["events"], r.json()["active"], r.json()["description"]) == (
        ["*"], False, "paused")
    assert (await api.delete(path, headers=ws.admin.headers)).status_code == 204
    assert (await api.get(path, headers=ws.admin.headers)).status_code == 404


INVALID_BODIES: list[tuple[dict[str, object], str]] = [
    ({"url": URL, "events": ["message.nonsense"]}, "events"),
    ({"url": URL, "events": []}, "events"),
    ({"url": URL}, "events"),
    ({"events": ["*"]}, "url"),
    ({"url": URL, "events": ["*"], "workspace_id": 1}, "workspace_id"),
    ({"url": URL, "events": ["*"], "secret": "mine"}, "secret"),
    ({"url": URL, "events": ["*"], "id": 5}, "id"),
]


async def test_invalid_bodies_are_refused_with_the_field(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.workspace()
    for body, field in INVALID_BODIES:
        r = await api.post("/api/v1/webhooks", headers=ws.admin.headers, json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["code"] == "validation_error"
        assert field in r.json()["error"]["message"], body
    assert (await api.get("/api/v1/webhooks", headers=ws.admin.headers)).json() == []


async def test_a_patch_cannot_null_a_field_or_set_the_secret(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.workspace()
    created = await create(api, ws)
    path = f"/api/v1/webhooks/{created['id']}"
    assert (await api.patch(path, headers=ws.admin.headers, json={"url": None})).status_code == 422
    r = await api.patch(path, headers=ws.admin.headers, json={"secret": "x"})
    assert r.status_code == 422


async def test_only_admins_manage_webhooks(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.workspace()
    created = await create(api, ws)
    for role in (Role.AGENT, Role.SUPERVISOR):
        member = await factory.member(ws, role)
        assert (await api.get("/api/v1/webhooks", headers=member.headers)).status_code == 403
        r = await api.post("/api/v1/webhooks", headers=member.headers,
                           json={"url": URL, "events": ["*"]})
        assert r.status_code == 403
        r = await api.get(f"/api/v1/webhooks/{created['id']}/deliveries",
                          headers=member.headers)
        assert r.status_code == 403


async def test_another_workspaces_webhooks_answer_404(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    a, b = await factory.workspace(), await factory.workspace()
    theirs = await create(api, a)
    base = f"/api/v1/webhooks/{theirs['id']}"
    assert (await api.get(base, headers=b.admin.headers)).status_code == 404
    assert (await api.patch(base, headers=b.admin.headers,
                            json={"active": False})).status_code == 404
    assert (await api.delete(base, headers=b.admin.headers)).status_code == 404
    assert (await api.get(f"{base}/deliveries", headers=b.admin.headers)).status_code == 404
    assert (await api.post(f"{base}/deliveries/1/retry",
                           headers=b.admin.headers)).status_code == 404
    assert (await api.get("/api/v1/webhooks", headers=b.admin.headers)).json() == []
    still = await api.get(base, headers=a.admin.headers)
    assert still.status_code == 200
    assert still.json()["active"] is True


async def test_changes_are_in_the_activity_log_without_the_secret(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.workspace()
    created = await create(api, ws)
    await api.patch(f"/api/v1/webhooks/{created['id']}", headers=ws.admin.headers,
                    json={"events": ["*"]})
    await api.delete(f"/api/v1/webhooks/{created['id']}", headers=ws.admin.headers)
    async with runtime.read_sessions() as session:
        entries = (await session.execute(
            select(ActivityEntry).where(ActivityEntry.workspace_id == ws.id,
                                        ActivityEntry.subject_type == "webhook")
            .order_by(ActivityEntry.id)
        )).scalars().all()
    assert [e.action for e in entries] == ["webhook.created", "webhook.updated", "webhook.deleted"]
    assert all(e.actor_id == ws.admin.user_id for e in entries)
    assert entries[1].changes == {"events": [["message.created"], ["*"]]}
    assert not any(str(created["secret"]) in str(e.changes) for e in entries)


# -- the SSRF guard at the door --------------------------------------------------------------

UNSAFE = [
    "http://127.0.0.1/", "http://localhost/", "http://0177.0.0.1/", "http://2130706433/",
    "http://127.1/", "http://0x7f.1/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://169.254.169.254/latest/",
    "http://100.64.0.1/", "http://10.0.0.1/", "http://192.168.0.10:8080/", "ftp://x/",
    "http://user:pw@127.0.0.1/",
]


async def test_unsafe_urls_are_refused_with_the_reason(
    factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.workspace()
    admin = Principal(ws.admin.user_id, ws.id, Role.ADMIN)
    async with runtime.sessions() as session:
        for url in UNSAFE:
            with pytest.raises(UnsafeURL) as refused:
                await service.create_subscription(
                    session, admin, WebhookCreate(url=url, events=["*"]), allow_private=False
                )
            assert refused.value.status_code == 422, url
            assert refused.value.code == "unsafe_url", url
            assert refused.value.reason, url
        stored = (await session.execute(
            select(WebhookSubscription).where(WebhookSubscription.workspace_id == ws.id)
        )).scalars().all()
        assert stored == []


async def test_the_api_answers_422_unsafe_url_naming_the_address(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings, "webhooks_allow_private", False)
    ws = await factory.workspace()
    r = await api.post("/api/v1/webhooks", headers=ws.admin.headers,
                       json={"url": "http://2130706433:8080/x", "events": ["*"]})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "unsafe_url"
    assert "127.0.0.1" in error["message"]
    assert error["details"][0]["field"] == "body.url"
    assert "loopback" in error["details"][0]["message"]
    wrapped = await api.post("/api/v1/webhooks", headers=ws.admin.headers,
                             json={"url": "http://[::ffff:169.254.169.254]/", "events": ["*"]})
    assert wrapped.status_code == 422
    assert "link-local" in wrapped.json()["error"]["message"]


async def test_changing_the_url_is_checked_too(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = await factory.workspace()
    created = await create(api, ws)
    monkeypatch.setattr(runtime.settings, "webhooks_allow_private", False)
    r = await api.patch(f"/api/v1/webhooks/{created['id']}", headers=ws.admin.headers,
                        json={"url": "http://127.1/"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "unsafe_url"
    again = await api.get(f"/api/v1/webhooks/{created['id']}", headers=ws.admin.headers)
    assert again.json()["url"] == URL
