"""Members, teams and what an admin can and cannot do to a user."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from frontdesk.accounts.models import Role, User
from frontdesk.accounts.service import verify_password
from frontdesk.runtime import Runtime
from tests.apitools import assert_error, error_fields
from tests.factories import Factory


async def test_an_admin_adds_a_member_with_a_role(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    r = await api.post("/api/v1/users", headers=ws.admin.headers,
                       json={"email": "New.Agent@Example.com", "name": "New",
                             "role": "supervisor"})
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["email"] == "new.agent@example.com" and user["role"] == "supervisor"
    listed = (await api.get("/api/v1/users", headers=ws.admin.headers)).json()
    assert user in listed
    assert (await api.get(f"/api/v1/users/{user['id']}", headers=ws.admin.headers)).json() == user


async def test_a_member_with_a_bad_email_or_role_is_refused(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    r = await api.post("/api/v1/users", headers=ws.admin.headers, json={"email": "nope"})
    assert error_fields(r) == ["body.email"]
    r = await api.post("/api/v1/users", headers=ws.admin.headers,
                       json={"email": "a@example.com", "role": "owner"})
    assert error_fields(r) == ["body.role"]


async def test_adding_a_user_of_another_workspace_does_not_touch_their_password(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    victim_ws = await factory.workspace()  # this one has a password
    victim = victim_ws.admin
    attacker = await factory.api_workspace()
    r = await api.post("/api/v1/users", headers=attacker.admin.headers,
                       json={"email": victim.email, "password": "attacker-chose-this",
                             "name": "Renamed", "role": "agent"})
    assert r.status_code == 201, r.text
    async with runtime.read_sessions() as session:
        user = (await session.execute(select(User).where(User.id == victim.user_id))).scalar_one()
    assert verify_password(user.password_hash, "Correct-Horse-9")
    assert not verify_password(user.password_hash, "attacker-chose-this")
    assert user.name != "Renamed"
    # and in the victim's own workspace they are still its admin
    me = (await api.get("/api/v1/me", headers=victim.headers)).json()
    assert me["role"] == "admin"


async def test_teams_gather_members_of_the_workspace(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    team_id = await factory.team(ws, agent, name="Billing")
    teams = (await api.get("/api/v1/teams", headers=agent.headers)).json()
    assert {"id": team_id, "name": "Billing", "member_ids": [agent.user_id]} in teams
    assert_error(await api.post("/api/v1/teams", headers=ws.admin.headers,
                                json={"name": "Billing"}), 409)
    outsider = (await factory.api_workspace()).admin
    r = await api.post(f"/api/v1/teams/{team_id}/members", headers=ws.admin.headers,
                       json={"user_id": outsider.user_id})
    assert_error(r, 404)
