"""The admin screens that undo or clear away: deleting a team, disabling and enabling an
inbox, reactivating a deactivated member. Over HTTP on both backends; each change is
checked through the REST API, not through the page that made it."""

from __future__ import annotations

import httpx

from frontdesk.accounts.models import Role
from frontdesk.runtime import Runtime
from tests.apitools import assert_error
from tests.factories import Factory, unique
from tests.web.test_admin_and_contacts_http import (  # noqa: F401 (a fixture)
    MakeClient,
    browser_client,
    open_browser,
)
from tests.web.test_email_admin_http import _quarantined


async def test_an_admin_deletes_a_team_and_its_conversations_lose_only_the_team(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient  # noqa: F811
) -> None:
    ws = await factory.workspace()
    agent = await factory.member(ws, Role.AGENT)
    team_id = await factory.team(ws, agent, name="Night shift")
    ids = await factory.conversation(ws)
    await factory.assign(ws, ids["conversation_id"], agent, team_id=team_id)
    admin = await open_browser(browser_client, ws.admin)
    page = await admin.get("/app/admin/teams")
    assert f'action="/app/admin/teams/{team_id}/delete"' in page.text
    assert "its members stay in the workspace" in page.text

    after = await admin.follow(f"/app/admin/teams/{team_id}/delete")
    assert "The team is deleted; its conversations no longer have a team." in after.text
    assert "Night shift" not in after.text
    assert (await api.get("/api/v1/teams", headers=ws.admin.headers)).json() == []
    conversation = (await api.get(f"/api/v1/conversations/{ids['conversation_id']}",
                                  headers=ws.admin.headers)).json()
    assert (conversation["team_id"], conversation["assignee_id"]) == (None, agent.user_id)
    # A stale page posting again: the error page, as for any unknown id.
    assert (await admin.post(f"/app/admin/teams/{team_id}/delete")).status_code == 404


async def test_an_admin_disables_an_inbox_the_list_says_so_and_enables_it_again(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient  # noqa: F811
) -> None:
    ws = await factory.workspace()
    inbox_id = await factory.inbox(ws)
    admin = await open_browser(browser_client, ws.admin)
    page = await admin.get("/app/admin/inboxes")
    assert f'action="/app/admin/inboxes/{inbox_id}/disable"' in page.text
    assert "replies from it still go out" in page.text

    after = await admin.follow(f"/app/admin/inboxes/{inbox_id}/disable")
    assert "The inbox is disabled: it takes no new messages." in after.text
    assert f'id="inbox-state-{inbox_id}"' in after.text
    assert f'action="/app/admin/inboxes/{inbox_id}/enable"' in after.text
    assert (await api.get(f"/api/v1/inboxes/{inbox_id}",
                          headers=ws.admin.headers)).json()["disabled_at"] is not None
    assert_error(await api.post(f"/api/v1/inboxes/{inbox_id}/incoming",
                                headers=ws.admin.headers,
                                json={"external_id": unique("x"),
                                      "contact": {"identifier": unique("c")},
                                      "content": "hello"}), 409, "inbox_disabled")
    # The agents' inbox filter still offers it, marked: its conversations are still there.
    nav = (await admin.get("/app/inbox")).text
    assert f"inbox_id={inbox_id}" in nav and "(disabled)" in nav

    after = await admin.follow(f"/app/admin/inboxes/{inbox_id}/enable")
    assert "The inbox is enabled: it takes messages again." in after.text
    assert f'id="inbox-state-{inbox_id}"' not in after.text
    await factory.incoming(ws, inbox_id)


async def test_quarantined_mail_of_a_disabled_inbox_is_refused_in_the_admins_language(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient,  # noqa: F811
    runtime: Runtime,
) -> None:
    ws = await factory.workspace()
    inbox_id, address = await factory.email_inbox(ws)
    broken = await _quarantined(runtime, address)
    admin = await open_browser(browser_client, ws.admin)
    await admin.follow(f"/app/admin/inboxes/{inbox_id}/disable")
    refused = await admin.follow(f"/app/admin/quarantine/{broken}/reprocess")
    assert "This inbox is disabled; an admin can enable it again." in refused.text


async def test_an_admin_reactivates_a_deactivated_member_with_the_role_they_choose(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient  # noqa: F811
) -> None:
    ws = await factory.workspace()
    supervisor = await factory.member(ws, Role.SUPERVISOR)
    admin = await open_browser(browser_client, ws.admin)
    await admin.follow(f"/app/admin/users/{supervisor.user_id}/deactivate")
    page = await admin.get("/app/admin/users")
    assert "Deactivated members" in page.text
    assert f'action="/app/admin/users/{supervisor.user_id}/reactivate"' in page.text
    # The role they had is the one offered.
    assert f'id="former-role-{supervisor.user_id}"' in page.text
    assert '<option value="supervisor" selected>' in page.text.split(
        f'id="former-role-{supervisor.user_id}"')[1]

    after = await admin.follow(f"/app/admin/users/{supervisor.user_id}/reactivate",
                               role="agent")
    assert "The member is back, with the role you chose." in after.text
    assert "Deactivated members" not in after.text
    users = {u["id"]: u["role"] for u in
             (await api.get("/api/v1/users", headers=ws.admin.headers)).json()}
    assert users[supervisor.user_id] == "agent"
    # They sign in again with their own password.
    await open_browser(browser_client, supervisor)
    # Reactivating someone who is a member: said on the page, nothing changes.
    again = await admin.follow(f"/app/admin/users/{supervisor.user_id}/reactivate",
                               role="admin")
    assert "That person is already a member; change their role in the list." in again.text


async def test_supervisors_and_agents_cannot_post_the_new_admin_forms(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient  # noqa: F811
) -> None:
    ws = await factory.workspace()
    team_id = await factory.team(ws, name="Billing")
    inbox_id = await factory.inbox(ws)
    gone = await factory.member(ws, Role.AGENT)
    assert (await api.delete(f"/api/v1/users/{gone.user_id}",
                             headers=ws.admin.headers)).status_code == 204
    for role in (Role.SUPERVISOR, Role.AGENT):
        person = await open_browser(browser_client, await factory.member(ws, role))
        for path, data in [(f"/app/admin/teams/{team_id}/delete", {}),
                           (f"/app/admin/inboxes/{inbox_id}/disable", {}),
                           (f"/app/admin/inboxes/{inbox_id}/enable", {}),
                           (f"/app/admin/users/{gone.user_id}/reactivate", {"role": "admin"})]:
            r = await person.post(path, **data)
            assert r.status_code == 403, f"{role} {path}: {r.status_code}"
    supervisor_page = await (await open_browser(
        browser_client, await factory.member(ws, Role.SUPERVISOR))).get("/app/admin/users")
    assert "Deactivated members" not in supervisor_page.text
    assert [t["id"] for t in (await api.get("/api/v1/teams",
                                            headers=ws.admin.headers)).json()] == [team_id]
    assert (await api.get(f"/api/v1/inboxes/{inbox_id}",
                          headers=ws.admin.headers)).json()["disabled_at"] is None
    assert gone.user_id not in {u["id"] for u in (await api.get(
        "/api/v1/users", headers=ws.admin.headers)).json()}
