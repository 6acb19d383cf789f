"""What an admin can undo or clear away without the CLI: deleting a team (its work and its
people stay) and bringing back a member who was deactivated."""

from __future__ import annotations

import httpx

from frontdesk.accounts.models import Role
from frontdesk.core.events import EventType
from frontdesk.runtime import Runtime
from tests.apitools import assert_error
from tests.core.test_admin_events import events_of
from tests.factories import Factory


async def test_deleting_a_team_keeps_its_conversations_without_a_team_and_its_people(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    team_id = await factory.team(ws, agent)
    other_team = await factory.team(ws, agent)
    first = await factory.conversation(ws)
    second = await factory.conversation(ws)
    elsewhere = await factory.conversation(ws)
    await factory.assign(ws, first["conversation_id"], agent, team_id=team_id)
    await factory.assign(ws, second["conversation_id"], None, team_id=team_id)
    await factory.assign(ws, elsewhere["conversation_id"], None, team_id=other_team)
    await factory.tag(ws, first["conversation_id"], "billing")
    headers = ws.admin.headers
    by_team = await api.post("/api/v1/views", headers=headers, json={
        "name": "Team queue", "filters": {"team_id": team_id, "status": ["open"]}})
    assert by_team.status_code == 201, by_team.text

    r = await api.delete(f"/api/v1/teams/{team_id}", headers=headers)
    assert r.status_code == 204, r.text

    teams = (await api.get("/api/v1/teams", headers=headers)).json()
    assert [t["id"] for t in teams] == [other_team]
    for ids in (first, second):
        conversation = (await api.get(f"/api/v1/conversations/{ids['conversation_id']}",
                                      headers=headers)).json()
        assert conversation["team_id"] is None
    kept = (await api.get(f"/api/v1/conversations/{first['conversation_id']}",
                          headers=headers)).json()
    assert kept["assignee_id"] == agent.user_id and kept["tags"] == ["billing"]
    assert (await api.get(f"/api/v1/conversations/{elsewhere['conversation_id']}",
                          headers=headers)).json()["team_id"] == other_team
    assert (await api.get("/api/v1/me", headers=agent.headers)).status_code == 200
    view = (await api.get(f"/api/v1/views/{by_team.json()['id']}", headers=headers)).json()
    assert view["filters"]["team_id"] is None and view["filters"]["status"] == ["open"]

    updated = [e for e in await events_of(runtime, ws, EventType.CONVERSATION_UPDATED)
               if e["data"]["changes"].get("team_id")]
    assert sorted(e["data"]["conversation"]["id"] for e in updated) == sorted(
        [first["conversation_id"], second["conversation_id"]])
    assert all(e["data"]["changes"]["team_id"] == [team_id, None] for e in updated)
    assert all(e["data"]["conversation"]["team_id"] is None for e in updated)
    first_event = next(e for e in updated
                       if e["data"]["conversation"]["id"] == first["conversation_id"])
    assert first_event["data"]["conversation"]["tags"] == ["billing"]
    [deleted] = await events_of(runtime, ws, EventType.TEAM_DELETED)
    assert deleted["data"]["team"]["id"] == team_id
    assert deleted["data"]["team"]["member_ids"] == [agent.user_id]  # as it was
    assert deleted["data"]["changes"] == {"conversations": 2}
    assert deleted["data"]["actor_user_id"] == ws.admin.user_id
    assert_error(await api.delete(f"/api/v1/teams/{team_id}", headers=headers), 404)


async def test_only_admins_delete_teams_and_only_their_own_workspaces(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    other = await factory.api_workspace()
    supervisor = await factory.api_member(ws, Role.SUPERVISOR)
    team_id = await factory.team(ws)
    assert_error(await api.delete(f"/api/v1/teams/{team_id}", headers=supervisor.headers), 403)
    assert_error(await api.delete(f"/api/v1/teams/{team_id}", headers=other.admin.headers),
                 404)
    assert len((await api.get("/api/v1/teams", headers=ws.admin.headers)).json()) == 1


async def test_a_deactivated_member_comes_back_with_the_role_chosen_but_not_their_tokens(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.SUPERVISOR)
    team_id = await factory.team(ws, agent)
    headers = ws.admin.headers
    assert (await api.delete(f"/api/v1/users/{agent.user_id}", headers=headers)).status_code \
        == 204
    former = (await api.get("/api/v1/deactivated-users", headers=headers)).json()
    assert [(u["id"], u["role"]) for u in former] == [(agent.user_id, "supervisor")]

    r = await api.post(f"/api/v1/users/{agent.user_id}/reactivate", headers=headers,
                       json={"role": "agent"})
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "agent" and r.json()["email"] == agent.email

    users = {u["id"]: u["role"] for u in
             (await api.get("/api/v1/users", headers=headers)).json()}
    assert users[agent.user_id] == "agent"
    assert (await api.get("/api/v1/deactivated-users", headers=headers)).json() == []
    # The token they had when they left stays revoked; their team is not given back.
    assert_error(await api.get("/api/v1/me", headers=agent.headers), 401)
    teams = (await api.get("/api/v1/teams", headers=headers)).json()
    assert next(t for t in teams if t["id"] == team_id)["member_ids"] == []
    # Back in: they are a member, not a former one.
    assert_error(await api.post(f"/api/v1/users/{agent.user_id}/reactivate", headers=headers,
                                json={"role": "agent"}), 409, "already_member")
    [event] = await events_of(runtime, ws, EventType.MEMBER_REACTIVATED)
    assert event["data"]["user"]["id"] == agent.user_id
    assert event["data"]["user"]["role"] == "agent"
    assert event["data"]["actor_user_id"] == ws.admin.user_id


async def test_only_this_workspaces_former_members_can_be_reactivated(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    other = await factory.api_workspace()
    stranger = await factory.api_member(other, Role.AGENT)
    left_other = await factory.api_member(other, Role.AGENT)
    assert (await api.delete(f"/api/v1/users/{left_other.user_id}",
                             headers=other.admin.headers)).status_code == 204
    supervisor = await factory.api_member(ws, Role.SUPERVISOR)
    # Someone who never was a member here, or left another workspace: not found here.
    for user_id in (stranger.user_id, left_other.user_id):
        assert_error(await api.post(f"/api/v1/users/{user_id}/reactivate",
                                    headers=ws.admin.headers, json={"role": "admin"}), 404)
    assert (await api.get("/api/v1/deactivated-users", headers=ws.admin.headers)).json() == []
    assert_error(await api.get("/api/v1/deactivated-users", headers=supervisor.headers), 403)
    assert_error(await api.post(f"/api/v1/users/{left_other.user_id}/reactivate",
                                headers=supervisor.headers, json={"role": "agent"}), 403)
