"""Inboxes: one per channel instance, made and renamed by admins, seen by every member."""

from __future__ import annotations

import httpx

from frontdesk.accounts.models import Role
from tests.apitools import assert_error, error_fields
from tests.factories import Factory


async def test_an_admin_creates_and_renames_an_inbox_that_members_see(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    r = await api.post("/api/v1/inboxes", headers=ws.admin.headers,
                       json={"name": "Website", "channel": "api"})
    assert r.status_code == 201, r.text
    inbox = r.json()
    assert (inbox["name"], inbox["channel"]) == ("Website", "api")
    r = await api.patch(f"/api/v1/inboxes/{inbox['id']}", headers=ws.admin.headers,
                        json={"name": "Mobile app"})
    assert r.status_code == 200 and r.json()["name"] == "Mobile app"
    seen = (await api.get("/api/v1/inboxes", headers=agent.headers)).json()
    assert [i["name"] for i in seen] == ["Mobile app"]
    got = (await api.get(f"/api/v1/inboxes/{inbox['id']}", headers=agent.headers)).json()
    assert got["name"] == "Mobile app"


async def test_an_inbox_needs_a_known_channel_and_a_name(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    r = await api.post("/api/v1/inboxes", headers=ws.admin.headers,
                       json={"name": "Fax", "channel": "fax"})
    assert error_fields(r) == ["body.channel"]
    r = await api.post("/api/v1/inboxes", headers=ws.admin.headers,
                       json={"name": "", "channel": "api"})
    assert error_fields(r) == ["body.name"]
    assert_error(await api.get("/api/v1/inboxes/424242424", headers=ws.admin.headers), 404)
