"""Workspace administration writes events too: inboxes, members, teams, companies, webhook
subscriptions and API tokens, each in the transaction of its change. Webhooks can
subscribe to them; agents' real-time stream does not carry them; no token or webhook
secret ever appears in one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy import select

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import create_user, ensure_workspace
from frontdesk.core.events import ADMIN_EVENT_TYPES, EventType, OutboxEvent
from frontdesk.runtime import Runtime
from frontdesk.webhooks.models import WebhookDelivery
from tests.factories import Factory, Workspace, unique
from tests.webhooks.receiver import eventually


async def events_of(runtime: Runtime, ws: Workspace, *types: EventType) -> list[dict[str, Any]]:
    """The workspace's events of these types, oldest first: {"type", "data"}."""
    async with runtime.read_sessions() as session:
        rows = (await session.execute(
            select(OutboxEvent).where(OutboxEvent.workspace_id == ws.id,
                                      OutboxEvent.type.in_([t.value for t in types]))
            .order_by(OutboxEvent.id))).scalars().all()
    return [{"type": r.type, "data": r.payload} for r in rows]


async def test_inboxes_created_and_changed_are_events(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime) -> None:
    ws = await factory.api_workspace()
    inbox_id = await factory.inbox(ws)
    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                        json={"name": "Website chat"})
    assert r.status_code == 200, r.text

    created, updated = await events_of(runtime, ws, EventType.INBOX_CREATED,
                                       EventType.INBOX_UPDATED)
    assert created["type"] == "inbox.created"
    assert created["data"]["inbox"]["id"] == inbox_id
    assert created["data"]["actor_user_id"] == ws.admin.user_id
    assert updated["type"] == "inbox.updated"
    assert updated["data"]["inbox"]["name"] == "Website chat"
    assert updated["data"]["changes"]["name"][1] == "Website chat"


async def test_members_added_changed_removed_and_added_back_are_events(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime) -> None:
    ws = await factory.api_workspace()
    email = f"{unique('new')}@example.com"
    headers = ws.admin.headers
    r = await api.post("/api/v1/users", headers=headers, json={"email": email, "role": "agent"})
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    r = await api.post(f"/api/v1/users/{user_id}/role", headers=headers,
                       json={"role": "supervisor"})
    assert r.status_code == 200, r.text
    r = await api.delete(f"/api/v1/users/{user_id}", headers=headers)
    assert r.status_code in (200, 204), r.text
    r = await api.post("/api/v1/users", headers=headers, json={"email": email, "role": "agent"})
    assert r.status_code == 201, r.text

    happened = [e for e in await events_of(runtime, ws, EventType.MEMBER_ADDED,
                                           EventType.MEMBER_ROLE_CHANGED,
                                           EventType.MEMBER_REMOVED)
                if e["data"]["user"]["id"] == user_id]  # not the workspace's first admin
    assert [(e["type"], e["data"]["user"]["role"]) for e in happened] == [
        ("member.added", "agent"), ("member.role_changed", "supervisor"),
        ("member.removed", "supervisor"), ("member.added", "agent")]
    assert all(e["data"]["actor_user_id"] == ws.admin.user_id for e in happened)
    assert happened[1]["data"]["changes"] == {"role": ["agent", "supervisor"]}


async def test_members_the_operator_adds_or_changes_are_events_without_an_actor(
        factory: Factory, runtime: Runtime) -> None:
    ws = await factory.api_workspace()
    email = f"{unique('cli')}@example.com"
    for role in (Role.AGENT, Role.AGENT, Role.SUPERVISOR):  # as `frontdesk admin create-user`
        async with runtime.sessions() as session:
            workspace = await ensure_workspace(session, ws.name)
            await create_user(session, workspace, email=email, role=role)
            await session.commit()

    happened = [e for e in await events_of(runtime, ws, EventType.MEMBER_ADDED,
                                           EventType.MEMBER_ROLE_CHANGED)
                if e["data"]["user"]["email"] == email]
    assert [(e["type"], e["data"]["actor_user_id"]) for e in happened] == [
        ("member.added", None), ("member.role_changed", None)]
    assert happened[1]["data"]["changes"] == {"role": ["agent", "supervisor"]}


async def test_teams_and_their_members_are_events(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    team_id = await factory.team(ws, agent, name=unique("Billing"))
    headers = ws.admin.headers
    r = await api.patch(f"/api/v1/teams/{team_id}", headers=headers, json={"name": "Refunds"})
    assert r.status_code == 200, r.text
    r = await api.delete(f"/api/v1/teams/{team_id}/members/{agent.user_id}", headers=headers)
    assert r.status_code in (200, 204), r.text
    r = await api.delete(f"/api/v1/teams/{team_id}/members/{agent.user_id}", headers=headers)
    assert r.status_code in (200, 204), r.text  # nothing left to remove: no event

    happened = await events_of(runtime, ws, EventType.TEAM_CREATED, EventType.TEAM_UPDATED,
                               EventType.TEAM_MEMBER_ADDED, EventType.TEAM_MEMBER_REMOVED)
    assert [(e["type"], e["data"]["team"]["member_ids"], e["data"]["user_id"])
            for e in happened] == [
        ("team.created", [], None), ("team.member_added", [agent.user_id], agent.user_id),
        ("team.updated", [agent.user_id], None), ("team.member_removed", [], agent.user_id)]
    assert happened[2]["data"]["changes"]["name"][1] == "Refunds"


async def test_a_company_created_is_an_event(
        factory: Factory, runtime: Runtime) -> None:
    ws = await factory.api_workspace()
    company_id = await factory.company(ws, name="ACME Ltd")

    [created] = await events_of(runtime, ws, EventType.COMPANY_CREATED)
    assert created["data"]["company"]["id"] == company_id
    assert created["data"]["company"]["name"] == "ACME Ltd"


async def test_webhook_and_token_events_never_carry_a_secret(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime) -> None:
    ws = await factory.api_workspace()
    headers = ws.admin.headers
    r = await api.post("/api/v1/webhooks", headers=headers,
                       json={"url": "http://127.0.0.1:9/hook", "events": ["*"]})
    assert r.status_code == 201, r.text
    webhook_id, secret = r.json()["id"], r.json()["secret"]
    r = await api.patch(f"/api/v1/webhooks/{webhook_id}", headers=headers,
                        json={"active": False})
    assert r.status_code == 200, r.text
    r = await api.delete(f"/api/v1/webhooks/{webhook_id}", headers=headers)
    assert r.status_code == 204, r.text
    token_id, token = await factory.token(ws.admin)
    r = await api.delete(f"/api/v1/tokens/{token_id}", headers=headers)
    assert r.status_code in (200, 204), r.text
    agent = await factory.api_member(ws, Role.AGENT)  # its token is revoked with it
    r = await api.delete(f"/api/v1/users/{agent.user_id}", headers=headers)
    assert r.status_code in (200, 204), r.text

    hooks = await events_of(runtime, ws, EventType.WEBHOOK_CREATED, EventType.WEBHOOK_UPDATED,
                            EventType.WEBHOOK_DELETED)
    assert [e["type"] for e in hooks] == ["webhook.created", "webhook.updated",
                                          "webhook.deleted"]
    assert all(e["data"]["webhook"]["id"] == webhook_id for e in hooks)
    assert hooks[1]["data"]["changes"] == {"active": [True, False]}
    tokens = await events_of(runtime, ws, EventType.API_TOKEN_CREATED,
                             EventType.API_TOKEN_REVOKED)
    # The admin's own token (the factory's), the extra one made and revoked, the agent's
    # made with them and revoked when they leave.
    assert [(e["type"], e["data"]["token"]["user_id"]) for e in tokens] == [
        ("api_token.created", ws.admin.user_id), ("api_token.created", ws.admin.user_id),
        ("api_token.revoked", ws.admin.user_id), ("api_token.created", agent.user_id),
        ("api_token.revoked", agent.user_id)]
    assert tokens[1]["data"]["token"]["id"] == tokens[2]["data"]["token"]["id"] == token_id
    every = json.dumps(await events_of(runtime, ws, *EventType))
    for secret_text in (secret, token, agent.token, token[10:], secret[8:]):
        assert secret_text not in every


async def test_webhooks_get_admin_events_they_name_and_agents_do_not_hear_them(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime) -> None:
    ws = await factory.api_workspace()
    r = await api.post("/api/v1/webhooks", headers=ws.admin.headers,
                       json={"url": "http://127.0.0.1:9/hook",
                             "events": ["team.created", "message.created"]})
    assert r.status_code == 201, r.text
    webhook_id = r.json()["id"]
    everything_id = await factory.webhook(ws)  # "*": the work, not its administration
    live = runtime.hub.subscribe(ws.id)
    try:
        team_id = await factory.team(ws)
        conversation = await factory.conversation(ws)

        heard: list[str] = []
        while "message.created" not in heard:  # dispatched after the team's events
            event = await asyncio.wait_for(live.queue.get(), timeout=10)
            assert event is not None
            heard.append(event["type"])
    finally:
        runtime.hub.unsubscribe(live)
    assert not {t.value for t in ADMIN_EVENT_TYPES} & set(heard), heard
    assert "conversation.created" in heard

    async def delivered(subscription_id: int) -> set[str]:
        async with runtime.read_sessions() as session:
            return set((await session.execute(
                select(WebhookDelivery.event_type)
                .where(WebhookDelivery.subscription_id == subscription_id))).scalars())

    async def named_ones_delivered() -> bool:
        return await delivered(webhook_id) == {"team.created", "message.created"}
    await eventually(named_ones_delivered, what="the team.created and message.created deliveries")
    to_everything = await delivered(everything_id)
    assert {"conversation.created", "message.created"} <= to_everything
    assert not {t.value for t in ADMIN_EVENT_TYPES} & to_everything, to_everything
    assert conversation["conversation_id"] and team_id
