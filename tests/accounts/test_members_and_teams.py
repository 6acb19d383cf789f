"""Running a workspace's people: deactivating a member, the last admin who must stay,
renaming teams and taking people out of them."""

from __future__ import annotations

import httpx

from frontdesk.accounts.models import Role
from tests.apitools import assert_error
from tests.factories import Factory


async def test_the_last_admin_can_be_neither_demoted_nor_removed(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    second = await factory.api_member(ws, Role.ADMIN)
    # Two admins: one may demote the other...
    r = await api.post(f"/api/v1/users/{second.user_id}/role", headers=ws.admin.headers,
                       json={"role": "supervisor"})
    assert r.status_code == 200, r.text
    # ...and the demoted one, now a supervisor, cannot undo it or touch the last admin.
    assert_error(await api.post(f"/api/v1/users/{ws.admin.user_id}/role", headers=second.headers,
                                json={"role": "agent"}), 403)
    # The remaining admin cannot step down: there would be nobody to run the workspace.
    assert_error(await api.post(f"/api/v1/users/{ws.admin.user_id}/role",
                                headers=ws.admin.headers, json={"role": "agent"}), 409)
    assert_error(await api.delete(f"/api/v1/users/{ws.admin.user_id}",
                                  headers=ws.admin.headers), 409)
    me = await api.get("/api/v1/me", headers=ws.admin.headers)
    assert me.json()["role"] == "admin"


async def test_removing_a_member_ends_their_access_and_unassigns_their_open_work(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    team_id = await factory.team(ws, agent)
    open_one = await factory.conversation(ws)
    done_one = await factory.conversation(ws)
    for ids in (open_one, done_one):
        await factory.assign(ws, ids["conversation_id"], agent, team_id=team_id)
    await factory.set_status(ws, done_one["conversation_id"], "resolved")
    assert (await api.get("/api/v1/me", headers=agent.headers)).status_code == 200

    r = await api.delete(f"/api/v1/users/{agent.user_id}", headers=ws.admin.headers)
    assert r.status_code == 204, r.text

    assert_error(await api.get("/api/v1/me", headers=agent.headers), 401)
    users = (await api.get("/api/v1/users", headers=ws.admin.headers)).json()
    assert agent.user_id not in {u["id"] for u in users}
    teams = (await api.get("/api/v1/teams", headers=ws.admin.headers)).json()
    assert next(t for t in teams if t["id"] == team_id)["member_ids"] == []
    still_open = (await api.get(f"/api/v1/conversations/{open_one['conversation_id']}",
                                headers=ws.admin.headers)).json()
    assert still_open["assignee_id"] is None and still_open["team_id"] == team_id
    resolved = (await api.get(f"/api/v1/conversations/{done_one['conversation_id']}",
                              headers=ws.admin.headers)).json()
    assert resolved["assignee_id"] == agent.user_id  # history says who handled it
    # Gone means gone: a second removal is a 404, and they can be invited back.
    assert_error(await api.delete(f"/api/v1/users/{agent.user_id}",
                                  headers=ws.admin.headers), 404)
    r = await api.post("/api/v1/users", headers=ws.admin.headers,
                       json={"email": agent.email, "role": "supervisor"})
    assert r.status_code == 201 and r.json()["id"] == agent.user_id
    # Back in, but the token they had when they left stays revoked.
    assert_error(await api.get("/api/v1/me", headers=agent.headers), 401)
    tokens = (await api.get("/api/v1/tokens", headers=ws.admin.headers)).json()
    assert all(t["revoked_at"] for t in tokens if t["user_id"] == agent.user_id)


async def test_an_admin_cannot_remove_themselves(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    await factory.api_member(ws, Role.ADMIN)
    r = await api.delete(f"/api/v1/users/{ws.admin.user_id}", headers=ws.admin.headers)
    assert_error(r, 409, "own_account")


async def test_teams_are_renamed_and_members_leave(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    team_id = await factory.team(ws, agent, name="Billing")
    other = await factory.team(ws, name="Sales")

    r = await api.patch(f"/api/v1/teams/{team_id}", headers=ws.admin.headers,
                        json={"name": "  Billing & refunds "})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": team_id, "name": "Billing & refunds",
                        "member_ids": [agent.user_id]}
    assert_error(await api.patch(f"/api/v1/teams/{other}", headers=ws.admin.headers,
                                 json={"name": "Billing & refunds"}), 409)

    r = await api.delete(f"/api/v1/teams/{team_id}/members/{agent.user_id}",
                         headers=ws.admin.headers)
    assert r.status_code == 200 and r.json()["member_ids"] == []
    again = await api.delete(f"/api/v1/teams/{team_id}/members/{agent.user_id}",
                             headers=ws.admin.headers)
    assert again.status_code == 200 and again.json()["member_ids"] == []


async def test_adding_someone_who_is_already_a_member_is_refused_not_a_role_change(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    """Otherwise "add member" would be a back door around the role rules: re-adding the
    last admin as an agent would demote them."""
    ws = await factory.api_workspace()
    r = await api.post("/api/v1/users", headers=ws.admin.headers,
                       json={"email": ws.admin.email.upper(), "role": "agent"})
    error = assert_error(r, 409, "already_member")
    assert error["details"] == {"user_id": ws.admin.user_id}
    assert (await api.get("/api/v1/me", headers=ws.admin.headers)).json()["role"] == "admin"
