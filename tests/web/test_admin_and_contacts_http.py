"""The admin screens and the contact pages over HTTP, on both backends: every route, the
roles that may use it, CSRF refusals, tenancy, and that each action went through the
services (checked through the REST API, not through the page that made it)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from frontdesk.accounts.models import Role
from frontdesk.web.security import LoginRateLimiter
from tests.factories import Factory, Member, Workspace, unique

PASSWORD = "Correct-Horse-9"  # the factory's password
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MakeClient = Callable[[], httpx.AsyncClient]


@pytest.fixture
async def browser_client(
    app_and_client: tuple[Any, httpx.AsyncClient],
) -> AsyncIterator[MakeClient]:
    app = app_and_client[0]
    app.state.login_limiter = LoginRateLimiter()
    clients: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://frontdesk.test", follow_redirects=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


class Browser:
    """One signed-in person's web session: pages, and forms posted with the CSRF token."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.token = token

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def post(self, path: str, **data: Any) -> httpx.Response:
        return await self.client.post(path, data={**data, "csrf_token": self.token})

    async def follow(self, path: str, **data: Any) -> httpx.Response:
        """Post a form and open the page it sends back to (where the flash is shown)."""
        r = await self.post(path, **data)
        assert r.status_code == 303, f"{path}: {r.status_code} {r.text[:300]}"
        return await self.get(r.headers["location"])


async def open_browser(make: MakeClient, member: Member, password: str = PASSWORD) -> Browser:
    client = make()
    login = await client.get("/app/login")
    found = CSRF.search(login.text)
    assert found
    r = await client.post("/app/login", data={"email": member.email, "password": password,
                                              "csrf_token": found.group(1)})
    assert r.status_code == 303, r.text[:300]
    inbox = await client.get("/app/inbox")
    token = CSRF.search(inbox.text)
    assert token
    return Browser(client, token.group(1))


ADMIN_PAGES = ["/app/admin/users", "/app/admin/teams", "/app/admin/inboxes", "/app/admin/tags",
               "/app/admin/webhooks", "/app/admin/tokens"]
SUPERVISOR_PAGES = ["/app/admin/users", "/app/admin/teams"]


async def test_each_role_sees_what_the_api_lets_it_see(
    browser_client: MakeClient, factory: Factory
) -> None:
    ws = await factory.workspace()
    admin = await open_browser(browser_client, ws.admin)
    supervisor = await open_browser(browser_client, await factory.member(ws, Role.SUPERVISOR))
    agent = await open_browser(browser_client, await factory.member(ws, Role.AGENT))

    for path in ADMIN_PAGES:
        r = await admin.get(path)
        assert r.status_code == 200, path
        assert 'aria-current="page"' in r.text and "<h1>" in r.text
    for path in ADMIN_PAGES:
        r = await supervisor.get(path)
        assert r.status_code == (200 if path in SUPERVISOR_PAGES else 403), path
        if r.status_code == 403:
            assert "This page is for admins." in r.text
        r = await agent.get(path)
        assert r.status_code == 403, path
        assert "This page is for supervisors and admins." in r.text or \
            "This page is for admins." in r.text
    # A supervisor sees members and teams but not the forms that change them.
    users = await supervisor.get("/app/admin/users")
    assert ws.admin.email in users.text and 'action="/app/admin/users"' not in users.text
    # The way in: the nav shows Admin to supervisors and admins only, Contacts to everyone.
    assert 'href="/app/admin"' in (await admin.get("/app/inbox")).text
    agent_inbox = (await agent.get("/app/inbox")).text
    assert 'href="/app/admin"' not in agent_inbox and 'href="/app/contacts"' in agent_inbox
    assert (await admin.get("/app/admin")).headers["location"] == "/app/admin/users"


async def test_a_supervisor_or_agent_cannot_change_anything_by_posting_the_forms(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    supervisor_member = await factory.member(ws, Role.SUPERVISOR)
    agent_member = await factory.member(ws, Role.AGENT)
    team_id = await factory.team(ws, name="Billing")
    for member in (supervisor_member, agent_member):
        person = await open_browser(browser_client, member)
        for path, data in [
            ("/app/admin/teams", {"name": "Sneaky"}),
            (f"/app/admin/teams/{team_id}/rename", {"name": "Sneaky"}),
            (f"/app/admin/teams/{team_id}/members", {"user_id": str(member.user_id)}),
            (f"/app/admin/users/{member.user_id}/role", {"role": "admin"}),
            (f"/app/admin/users/{ws.admin.user_id}/deactivate", {}),
            ("/app/admin/users", {"email": "new@example.com", "role": "admin"}),
            ("/app/admin/inboxes", {"name": "Sneaky"}),
            ("/app/admin/tokens", {"name": "Sneaky"}),
            ("/app/admin/webhooks", {"url": "http://127.0.0.1:9/x"}),
        ]:
            r = await person.post(path, **data)
            assert r.status_code == 403, f"{member.role} {path}: {r.status_code}"
    teams = (await api.get("/api/v1/teams", headers=ws.admin.headers)).json()
    assert [(t["name"], t["member_ids"]) for t in teams] == [("Billing", [])]
    users = (await api.get("/api/v1/users", headers=ws.admin.headers)).json()
    assert {u["role"] for u in users if u["id"] != ws.admin.user_id} == {"supervisor", "agent"}
    assert (await api.get("/api/v1/inboxes", headers=ws.admin.headers)).json() == []


async def test_admin_forms_without_a_valid_csrf_token_are_refused(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    admin = await open_browser(browser_client, ws.admin)
    conversation = await factory.conversation(ws)
    for path, data in [("/app/admin/teams", {"name": "Forged"}),
                       ("/app/admin/tokens", {"name": "Forged"}),
                       (f"/app/contacts/{conversation['contact_id']}/edit", {"name": "Forged"})]:
        missing = await admin.client.post(path, data=data)
        forged = await admin.client.post(path, data={**data, "csrf_token": "x" * 43})
        for r in (missing, forged):
            assert r.status_code == 403, path
            assert "did not come from Frontdesk" in r.text
    assert (await api.get("/api/v1/teams", headers=ws.admin.headers)).json() == []
    tokens = (await api.get("/api/v1/tokens", headers=ws.admin.headers)).json()
    assert "Forged" not in {t["name"] for t in tokens}
    contact = (await api.get(f"/api/v1/contacts/{conversation['contact_id']}",
                             headers=ws.admin.headers)).json()
    assert contact["name"] != "Forged"


async def test_members_are_added_their_roles_changed_and_deactivated(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    admin = await open_browser(browser_client, ws.admin)
    email = f"{unique('new')}@example.com"

    page = await admin.follow("/app/admin/users", email=email, name="Nadia New", role="agent",
                              password="Long-enough-1")
    assert "The member is added." in page.text and "Nadia New" in page.text
    users = {u["email"]: u for u in (await api.get("/api/v1/users",
                                                   headers=ws.admin.headers)).json()}
    new_id = users[email]["id"]
    assert users[email]["role"] == "agent"
    # The member can sign in with the first password the admin gave.
    nadia = Member(new_id, email, Role.AGENT, "")
    assert (await open_browser(browser_client, nadia, "Long-enough-1")).token

    again = await admin.follow("/app/admin/users", email=email, role="admin")
    assert "That person is already a member" in again.text
    bad = await admin.follow("/app/admin/users", email="not an address", role="agent")
    assert "Enter a valid e-mail address." in bad.text
    short = await admin.follow("/app/admin/users", email=f"{unique('x')}@example.com",
                               role="agent", password="short")
    assert "A password needs at least 8 characters." in short.text

    page = await admin.follow(f"/app/admin/users/{new_id}/role", role="supervisor")
    assert "The role is changed." in page.text
    me = await api.get(f"/api/v1/users/{new_id}", headers=ws.admin.headers)
    assert me.json()["role"] == "supervisor"

    # The last admin: nobody can deactivate them (their own row has no button; a forged
    # post is refused by the service with a reason).
    page = await admin.follow(f"/app/admin/users/{ws.admin.user_id}/deactivate")
    assert "You cannot do that to your own account." in page.text
    second = await factory.member(ws, Role.ADMIN)
    other_admin = await open_browser(browser_client, second)
    page = await other_admin.follow(f"/app/admin/users/{ws.admin.user_id}/role", role="agent")
    assert "The role is changed." in page.text
    page = await other_admin.follow(f"/app/admin/users/{second.user_id}/role", role="agent")
    assert "You cannot do that to your own account." in page.text

    page = await other_admin.follow(f"/app/admin/users/{new_id}/deactivate")
    assert "The member is deactivated" in page.text
    assert f'id="member-{new_id}"' not in page.text
    users = (await api.get("/api/v1/users", headers=second.headers)).json()
    assert new_id not in {u["id"] for u in users}


async def test_the_last_admin_is_kept_when_another_admin_is_demoted(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    second = await factory.member(ws, Role.ADMIN)
    first = await open_browser(browser_client, ws.admin)
    page = await first.follow(f"/app/admin/users/{second.user_id}/role", role="agent")
    assert "The role is changed." in page.text
    # Now the only admin: the page offers no way to deactivate or demote them.
    assert f'action="/app/admin/users/{ws.admin.user_id}/deactivate"' not in page.text
    assert f'action="/app/admin/users/{ws.admin.user_id}/role"' not in page.text
    r = await api.post(f"/api/v1/users/{ws.admin.user_id}/role", headers=ws.admin.headers,
                       json={"role": "agent"})
    assert r.status_code == 409


async def test_teams_are_created_renamed_and_staffed(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    agent = await factory.member(ws, Role.AGENT)
    admin = await open_browser(browser_client, ws.admin)
    page = await admin.follow("/app/admin/teams", name="  Billing ")
    assert "The team is created." in page.text
    team = (await api.get("/api/v1/teams", headers=ws.admin.headers)).json()[0]
    assert team["name"] == "Billing"
    page = await admin.follow("/app/admin/teams", name="Billing")
    assert "That name is already taken." in page.text
    page = await admin.follow(f"/app/admin/teams/{team['id']}/rename", name="Billing & refunds")
    assert "Billing &amp; refunds" in page.text
    page = await admin.follow(f"/app/admin/teams/{team['id']}/members",
                              user_id=str(agent.user_id))
    assert "The team has a new member." in page.text
    team = (await api.get("/api/v1/teams", headers=ws.admin.headers)).json()[0]
    assert team == {"id": team["id"], "name": "Billing & refunds", "member_ids": [agent.user_id]}
    page = await admin.follow(f"/app/admin/teams/{team['id']}/members/{agent.user_id}/remove")
    assert "The member has left the team." in page.text
    assert (await api.get("/api/v1/teams", headers=ws.admin.headers)).json()[0]["member_ids"] == []


async def test_api_inboxes_are_created_and_renamed(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    admin = await open_browser(browser_client, ws.admin)
    page = await admin.follow("/app/admin/inboxes", name="Shop")
    assert "The API inbox is created." in page.text
    inbox = (await api.get("/api/v1/inboxes", headers=ws.admin.headers)).json()[0]
    assert (inbox["name"], inbox["channel"]) == ("Shop", "api")
    assert f"POST /api/v1/inboxes/{inbox['id']}/incoming" in page.text
    page = await admin.follow(f"/app/admin/inboxes/{inbox['id']}/rename", name="Web shop")
    assert "The inbox is renamed." in page.text
    renamed = await api.get(f"/api/v1/inboxes/{inbox['id']}", headers=ws.admin.headers)
    assert renamed.json()["name"] == "Web shop"


async def test_tags_are_listed_with_counts_renamed_and_deleted(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    inbox = await factory.inbox(ws)
    first = int((await factory.incoming(ws, inbox))["conversation_id"])
    second = int((await factory.incoming(ws, inbox))["conversation_id"])
    await factory.tag(ws, first, "refund", "vip")
    await factory.tag(ws, second, "refund")
    admin = await open_browser(browser_client, ws.admin)
    page = await admin.get("/app/admin/tags")
    rows = re.findall(r'<bdi>([^<]+)</bdi></a></td>\s*<td class="num">(\d+)</td>', page.text)
    assert rows == [("refund", "2"), ("vip", "1")]
    page = await admin.follow("/app/admin/tags/rename", name="vip", new_name="Priority")
    assert "The tag is renamed on every conversation." in page.text
    conversation = (await api.get(f"/api/v1/conversations/{first}",
                                  headers=ws.admin.headers)).json()
    assert conversation["tags"] == ["priority", "refund"]
    page = await admin.follow("/app/admin/tags/delete", name="refund")
    assert "The tag is deleted from every conversation." in page.text
    for cid, tags in ((first, ["priority"]), (second, [])):
        r = await api.get(f"/api/v1/conversations/{cid}", headers=ws.admin.headers)
        assert r.json()["tags"] == tags


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that is having a bad day: every delivery gets a 503."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def failing_receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


async def test_webhooks_show_the_secret_once_and_log_deliveries_with_status_codes(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient, failing_receiver: str
) -> None:
    ws = await factory.workspace()
    admin = await open_browser(browser_client, ws.admin)
    r = await admin.post("/app/admin/webhooks", url=failing_receiver, description="CRM sync",
                         events=["message.created", "contact.merged"])
    assert r.status_code == 200
    secret = re.search(r'id="webhook-secret" class="secret" type="text" readonly value="([^"]+)"',
                       r.text)
    assert secret and len(secret.group(1)) >= 32
    hook = (await api.get("/api/v1/webhooks", headers=ws.admin.headers)).json()[0]
    assert hook["events"] == ["message.created", "contact.merged"]
    assert hook["description"] == "CRM sync"
    listing = await admin.get("/app/admin/webhooks")
    assert secret.group(1) not in listing.text and failing_receiver in listing.text

    await factory.conversation(ws)  # a message.created event to deliver
    log = ""
    for _ in range(150):
        log = (await admin.get(f"/app/admin/webhooks/{hook['id']}")).text
        if 'data-code="503"' in log:
            break
        await asyncio.sleep(0.1)
    assert 'data-code="503"' in log and "message.created" in log

    page = await admin.follow(f"/app/admin/webhooks/{hook['id']}/active", active="0")
    assert "The webhook is switched off." in page.text
    assert (await api.get(f"/api/v1/webhooks/{hook['id']}",
                          headers=ws.admin.headers)).json()["active"] is False
    page = await admin.follow(f"/app/admin/webhooks/{hook['id']}/delete")
    assert "The webhook is deleted" in page.text
    assert (await api.get("/api/v1/webhooks", headers=ws.admin.headers)).json() == []
    # The SSRF guard's rules hold here too (credentials in a URL are always refused).
    page = await admin.follow("/app/admin/webhooks", url="http://user:pw@127.0.0.1:9/hook")
    assert "That URL is not allowed" in page.text
    assert (await api.get("/api/v1/webhooks", headers=ws.admin.headers)).json() == []


async def test_tokens_are_shown_once_work_and_are_revoked(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    agent = await factory.member(ws, Role.AGENT)
    admin = await open_browser(browser_client, ws.admin)
    r = await admin.post("/app/admin/tokens", name="Shop integration")
    assert r.status_code == 200
    found = re.search(r'id="new-token" class="secret" type="text" readonly value="(fd_[^"]+)"',
                      r.text)
    assert found
    token = found.group(1)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/v1/me", headers=headers)).json()["id"] == ws.admin.user_id
    page = await admin.get("/app/admin/tokens")
    assert token not in page.text and token[:10] in page.text
    assert agent.email.split("@")[0] in page.text or "agent" in page.text  # members' tokens too
    token_id = next(t["id"] for t in (await api.get("/api/v1/tokens", headers=ws.admin.headers))
                    .json() if t["name"] == "Shop integration")
    page = await admin.follow(f"/app/admin/tokens/{token_id}/revoke")
    assert "The token is revoked" in page.text
    assert (await api.get("/api/v1/me", headers=headers)).status_code == 401


async def test_another_workspaces_ids_are_not_found_on_every_admin_and_contact_route(
    browser_client: MakeClient, factory: Factory
) -> None:
    a, b = await factory.workspace(), await factory.workspace()
    conversation = await factory.conversation(a)
    team_id = await factory.team(a, name="A team")
    webhook_id = await factory.webhook(a)
    token_id, _ = await factory.token(a.admin)
    inbox_id = conversation["inbox_id"]
    contact_id = conversation["contact_id"]
    intruder = await open_browser(browser_client, b.admin)
    b_conversation = await factory.conversation(b)
    gets = [f"/app/admin/webhooks/{webhook_id}", f"/app/contacts/{contact_id}",
            f"/app/contacts/{contact_id}/merge"]
    for path in gets:
        assert (await intruder.get(path)).status_code == 404, path
    posts = [
        (f"/app/admin/teams/{team_id}/rename", {"name": "Mine now"}),
        (f"/app/admin/teams/{team_id}/members", {"user_id": str(b.admin.user_id)}),
        (f"/app/admin/users/{a.admin.user_id}/role", {"role": "agent"}),
        (f"/app/admin/users/{a.admin.user_id}/deactivate", {}),
        (f"/app/admin/inboxes/{inbox_id}/rename", {"name": "Mine now"}),
        (f"/app/admin/webhooks/{webhook_id}/delete", {}),
        (f"/app/admin/webhooks/{webhook_id}/active", {"active": "0"}),
        (f"/app/admin/tokens/{token_id}/revoke", {}),
        (f"/app/contacts/{contact_id}/edit", {"name": "Mine now"}),
        (f"/app/contacts/{contact_id}/attributes", {"key": "k", "value": "v"}),
        (f"/app/contacts/{contact_id}/merge", {"other_id": str(b_conversation["contact_id"])}),
        (f"/app/contacts/{b_conversation['contact_id']}/merge", {"other_id": str(contact_id)}),
    ]
    for path, data in posts:
        r = await intruder.post(path, **data)
        assert r.status_code == 404, f"{path}: {r.status_code}"
    # Tags are named, not numbered: another workspace's tag name is simply unknown here.
    await factory.tag(a, conversation["conversation_id"], "a-secret-tag")
    assert "a-secret-tag" not in (await intruder.get("/app/admin/tags")).text
    r = await intruder.post("/app/admin/tags/delete", name="a-secret-tag")
    assert r.status_code == 404
    listed = await intruder.get("/app/contacts")
    assert f"/app/contacts/{contact_id}\"" not in listed.text


async def _contact_with_history(factory: Factory, ws: Workspace) -> dict[str, Any]:
    """One customer who wrote twice, to two inboxes, with a tag and a private note."""
    email = f"{unique('emily')}@example.com"
    first = await factory.conversation(ws, identifier=unique("cust"), name="Emily Carter",
                                       email=email)
    other_inbox = await factory.inbox(ws)
    second = await factory.incoming(ws, other_inbox, content="And my parcel is late.",
                                    email=email)
    await factory.tag(ws, first["conversation_id"], "billing")
    r = await factory.api.post(f"/api/v1/conversations/{first['conversation_id']}/messages",
                               headers=ws.admin.headers,
                               json={"content": "Prefers to be called in the morning.",
                                     "private": True})
    assert r.status_code == 201, r.text
    return {"contact_id": first["contact_id"], "email": email,
            "conversations": [first["conversation_id"], second["conversation_id"]]}


async def test_the_contact_page_shows_everything_about_the_customer(
    browser_client: MakeClient, factory: Factory
) -> None:
    ws = await factory.workspace()
    made = await _contact_with_history(factory, ws)
    await factory.contact_tags(ws, made["contact_id"], "vip")
    await factory.contact_note(ws, made["contact_id"], "Renewal is due in March.")
    agent = await open_browser(browser_client, await factory.member(ws, Role.AGENT))
    listing = await agent.get("/app/contacts?q=emily")
    assert f'href="/app/contacts/{made["contact_id"]}"' in listing.text
    assert re.search(r'<td class="num">2</td>', listing.text)  # two conversations
    assert "Emily Carter" in (await agent.get(f"/app/contacts?q={made['email']}")).text
    assert "Emily Carter" not in (await agent.get("/app/contacts?q=nobody-at-all")).text
    page = await agent.get(f"/app/contacts/{made['contact_id']}")
    assert page.status_code == 200
    text = page.text
    assert "Emily Carter" in text and made["email"] in text
    for cid in made["conversations"]:  # both inboxes, one timeline
        assert f'id="timeline-{cid}"' in text
    assert "And my parcel is late." in text
    assert "billing" in text and "vip" in text  # their conversations' tags and their own
    assert "Renewal is due in March." in text  # a note about the contact itself
    assert 'id="merge-link"' not in text  # merging is for supervisors
    # The conversation's contact sidebar links here.
    pane = await agent.get(f"/app/conversations/{made['conversations'][0]}")
    assert f'href="/app/contacts/{made["contact_id"]}"' in pane.text


async def test_a_contact_is_edited_from_its_page(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    made = await _contact_with_history(factory, ws)
    company_id = await factory.company(ws, name="Carter & Co")
    someone_else = await factory.conversation(ws, email="taken@example.com")
    agent = await open_browser(browser_client, await factory.member(ws, Role.AGENT))
    cid = made["contact_id"]
    page = await agent.follow(f"/app/contacts/{cid}/edit", name="Emily J. Carter",
                              email=made["email"], phone="+44 20 7946 0958",
                              company_id=str(company_id))
    assert "The contact is saved." in page.text
    contact = (await api.get(f"/api/v1/contacts/{cid}", headers=ws.admin.headers)).json()
    assert contact["name"] == "Emily J. Carter" and contact["phone"] == "+442079460958"
    assert contact["company_id"] == company_id
    assert "+442079460958" in {i["value"] for i in contact["identities"]}

    page = await agent.follow(f"/app/contacts/{cid}/edit", name="Emily J. Carter",
                              email="taken@example.com")
    assert "That address or number belongs to another contact." in page.text
    page = await agent.follow(f"/app/contacts/{cid}/edit", name="Emily", phone="12")
    assert "Enter the phone number with its country code" in page.text
    assert someone_else["contact_id"] != cid

    page = await agent.follow(f"/app/contacts/{cid}/attributes", key="plan", value="Gold")
    assert "The attribute is saved." in page.text
    page = await agent.follow(f"/app/contacts/{cid}/attributes", key="city", value="Leeds")
    contact = (await api.get(f"/api/v1/contacts/{cid}", headers=ws.admin.headers)).json()
    assert contact["custom_attributes"] == {"plan": "Gold", "city": "Leeds"}
    page = await agent.follow(f"/app/contacts/{cid}/attributes/remove", key="plan")
    contact = (await api.get(f"/api/v1/contacts/{cid}", headers=ws.admin.headers)).json()
    assert contact["custom_attributes"] == {"city": "Leeds"}

    phone = next(i for i in contact["identities"] if i["kind"] == "phone")
    page = await agent.follow(f"/app/contacts/{cid}/identities/{phone['id']}/remove")
    assert "The identity is removed." in page.text
    contact = (await api.get(f"/api/v1/contacts/{cid}", headers=ws.admin.headers)).json()
    assert contact["phone"] is None and phone["id"] not in {i["id"]
                                                             for i in contact["identities"]}


async def test_contacts_are_merged_after_a_search_and_a_confirmation(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    made = await _contact_with_history(factory, ws)
    duplicate = await factory.conversation(ws, identifier=unique("tg"), name="Emily (Telegram)")
    supervisor = await open_browser(browser_client, await factory.member(ws, Role.SUPERVISOR))
    agent = await open_browser(browser_client, await factory.member(ws, Role.AGENT))
    cid, other = made["contact_id"], duplicate["contact_id"]

    assert (await agent.get(f"/app/contacts/{cid}/merge")).status_code == 403
    assert (await agent.post(f"/app/contacts/{cid}/merge", other_id=str(other))).status_code == 403

    page = await supervisor.get(f"/app/contacts/{cid}")
    assert 'id="merge-link"' in page.text
    picker = await supervisor.get(f"/app/contacts/{cid}/merge?q=Telegram")
    assert f'href="/app/contacts/{cid}/merge?other={other}"' in picker.text
    confirm = await supervisor.get(f"/app/contacts/{cid}/merge?other={other}")
    assert 'id="confirm-merge"' in confirm.text and "Emily (Telegram)" in confirm.text
    assert f'href="/app/contacts/{other}/merge?other={cid}" id="swap-merge"' in confirm.text
    page = await supervisor.follow(f"/app/contacts/{cid}/merge", other_id=str(other))
    assert "The contacts are merged" in page.text
    assert f'id="timeline-{duplicate["conversation_id"]}"' in page.text
    assert (await api.get(f"/api/v1/contacts/{other}", headers=ws.admin.headers)).status_code == 404
    moved = await api.get(f"/api/v1/conversations/{duplicate['conversation_id']}",
                          headers=ws.admin.headers)
    assert moved.json()["contact_id"] == cid
    same = await supervisor.follow(f"/app/contacts/{cid}/merge", other_id=str(cid))
    assert "A contact cannot be merged into itself." in same.text


async def test_the_admin_and_contact_pages_speak_arabic_right_to_left(
    browser_client: MakeClient, factory: Factory
) -> None:
    ws = await factory.workspace()
    made = await _contact_with_history(factory, ws)
    admin = await open_browser(browser_client, ws.admin)
    switched = await admin.post("/app/locale", locale="ar", back="/app/admin/users")
    assert switched.status_code == 303
    users = await admin.get("/app/admin/users")
    assert 'dir="rtl"' in users.text and "الأعضاء والأدوار" in users.text
    contact = await admin.get(f"/app/contacts/{made['contact_id']}")
    assert 'dir="rtl"' in contact.text and "المحادثات على كل القنوات" in contact.text
    refusal = await (await open_browser(browser_client, await factory.member(ws, Role.AGENT))
                     ).get("/app/admin/tokens")
    assert refusal.status_code == 403


async def test_a_supervisor_files_a_contact_under_a_new_or_existing_company(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    first = await factory.conversation(ws, identifier=unique("cust"), name="Emily Carter")
    second = await factory.conversation(ws, identifier=unique("cust"), name="John Carter")
    supervisor = await open_browser(browser_client, await factory.member(ws, Role.SUPERVISOR))
    agent = await open_browser(browser_client, await factory.member(ws, Role.AGENT))

    page = await supervisor.follow(f"/app/contacts/{first['contact_id']}/edit",
                                   name="Emily Carter", new_company="Carter & Co")
    assert "The contact is saved." in page.text and "Carter &amp; Co" in page.text
    companies = (await api.get("/api/v1/companies", headers=ws.admin.headers)).json()
    assert [c["name"] for c in companies] == ["Carter & Co"]
    await supervisor.follow(f"/app/contacts/{second['contact_id']}/edit", name="John Carter",
                            new_company="Carter & Co")
    for made in (first, second):
        contact = (await api.get(f"/api/v1/contacts/{made['contact_id']}",
                                 headers=ws.admin.headers)).json()
        assert contact["company_id"] == companies[0]["id"]
    assert len((await api.get("/api/v1/companies", headers=ws.admin.headers)).json()) == 1

    agent_page = await agent.get(f"/app/contacts/{first['contact_id']}")
    assert 'name="new_company"' not in agent_page.text
    r = await agent.post(f"/app/contacts/{first['contact_id']}/edit", name="Emily Carter",
                         new_company="Agents Inc")
    assert r.status_code == 403
    assert len((await api.get("/api/v1/companies", headers=ws.admin.headers)).json()) == 1


def _web_routes() -> list[tuple[str, str]]:
    """Every route of the admin area and the contact pages, from the routers themselves: a
    route added tomorrow is walked tomorrow."""
    from fastapi.routing import APIRoute

    from frontdesk.web.routes_admin import router as admin_router
    from frontdesk.web.routes_contacts import router as contacts_router

    found = []
    for router in (admin_router, contacts_router):
        for route in router.routes:
            assert isinstance(route, APIRoute)
            for method in route.methods or ():
                found.append((method, route.path))
    return sorted(found)


WEB_ROUTES = _web_routes()


def _fill(path: str, value: int) -> str:
    return re.sub(r"{\w+}", str(value), path)


async def test_every_route_needs_a_sign_in_and_every_post_a_csrf_token(
    browser_client: MakeClient, factory: Factory
) -> None:
    assert len(WEB_ROUTES) >= 30
    ws = await factory.workspace()
    conversation = await factory.conversation(ws)
    anonymous = browser_client()
    admin = await open_browser(browser_client, ws.admin)
    for method, path in WEB_ROUTES:
        url = _fill(path, conversation["contact_id"])
        r = await anonymous.request(method, url)
        if method == "GET":
            assert r.status_code == 303 and r.headers["location"].startswith("/app/login"), url
        else:  # no session, so no token: refused before anything else
            assert r.status_code == 403, f"{method} {url}: {r.status_code}"
            r = await admin.client.request(method, url, data={"name": "x"})
            assert r.status_code == 403 and "did not come from Frontdesk" in r.text, url


async def test_an_agent_gets_the_refusal_on_every_admin_route(
    browser_client: MakeClient, factory: Factory
) -> None:
    ws = await factory.workspace()
    agent = await open_browser(browser_client, await factory.member(ws, Role.AGENT))
    for method, path in WEB_ROUTES:
        if not path.startswith("/app/admin"):
            continue
        url = _fill(path, ws.admin.user_id)
        r = await (agent.get(url) if method == "GET" else agent.post(url))
        assert r.status_code == 403, f"{method} {url}: {r.status_code}"


async def test_a_webhook_is_edited_and_the_ssrf_guard_still_holds(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    hook_id = await factory.webhook(ws)
    admin = await open_browser(browser_client, ws.admin)
    page = await admin.get(f"/app/admin/webhooks/{hook_id}")
    assert 'name="events" value="contact.merged"' in page.text
    page = await admin.follow(f"/app/admin/webhooks/{hook_id}/edit",
                              url="http://127.0.0.1:9/other", description="Billing system",
                              events=["contact.merged", "contact.updated"])
    assert "The webhook is saved." in page.text
    assert 'value="contact.merged" checked' in page.text
    hook = (await api.get(f"/api/v1/webhooks/{hook_id}", headers=ws.admin.headers)).json()
    assert (hook["url"], hook["description"], hook["events"]) == (
        "http://127.0.0.1:9/other", "Billing system", ["contact.merged", "contact.updated"])
    page = await admin.follow(f"/app/admin/webhooks/{hook_id}/edit", url="ftp://example.com/x")
    assert "That URL is not allowed" in page.text
    page = await admin.follow(f"/app/admin/webhooks/{hook_id}/edit",
                              url="http://127.0.0.1:9/other", events=["no.such_event"])
    assert "Enter an http(s) URL and choose the events to send." in page.text
    hook = (await api.get(f"/api/v1/webhooks/{hook_id}", headers=ws.admin.headers)).json()
    assert hook["url"] == "http://127.0.0.1:9/other" and hook["events"] == [
        "contact.merged", "contact.updated"]


async def test_contact_tags_are_listed_with_counts_renamed_and_deleted_by_admins_only(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient
) -> None:
    ws, other = await factory.workspace(), await factory.workspace()
    anna = int((await factory.conversation(ws))["contact_id"])
    omar = int((await factory.conversation(ws))["contact_id"])
    await factory.contact_tags(ws, anna, "vip", "churn-risk")
    await factory.contact_tags(ws, omar, "vip")
    await factory.contact_tags(other, int((await factory.conversation(other))["contact_id"]),
                               "their-secret")
    conversation = (await factory.conversation(ws))["conversation_id"]
    await factory.tag(ws, conversation, "refund")

    admin = await open_browser(browser_client, ws.admin)
    page = (await admin.get("/app/admin/tags")).text
    conversation_part, contact_part = page.split('id="contact-tags-title"')
    rows = re.compile(r'<bdi>([^<]+)</bdi></a></td>\s*<td class="num">(\d+)</td>')
    assert rows.findall(conversation_part) == [("refund", "1")]
    assert rows.findall(contact_part) == [("churn-risk", "1"), ("vip", "2")]
    assert 'href="/app/contacts?tag=vip"' in contact_part
    assert "their-secret" not in page

    page = await admin.follow("/app/admin/contact-tags/rename", name="vip", new_name="Gold")
    assert "The tag is renamed on every contact." in page.text
    page = await admin.follow("/app/admin/contact-tags/delete", name="churn-risk")
    assert "The tag is deleted from every contact." in page.text
    for contact_id, tags in ((anna, ["gold"]), (omar, ["gold"])):
        r = await api.get(f"/api/v1/contacts/{contact_id}", headers=ws.admin.headers)
        assert r.json()["tags"] == tags
    page = await admin.follow("/app/admin/contact-tags/rename", name="gold", new_name=" ")
    assert "That could not be saved." in page.text
    # Another workspace's tag is unknown here, as every other of its names and ids.
    assert (await admin.post("/app/admin/contact-tags/delete",
                             name="their-secret")).status_code == 404

    for role in (Role.SUPERVISOR, Role.AGENT):
        person = await open_browser(browser_client, await factory.member(ws, role))
        assert (await person.get("/app/admin/tags")).status_code == 403
        for path, data in (("/app/admin/contact-tags/rename", {"name": "gold",
                                                                "new_name": "sneaky"}),
                           ("/app/admin/contact-tags/delete", {"name": "gold"})):
            r = await person.post(path, **data)
            assert r.status_code == 403, f"{role} {path}: {r.status_code}"
    r = await api.get(f"/api/v1/contacts/{anna}", headers=ws.admin.headers)
    assert r.json()["tags"] == ["gold"]
