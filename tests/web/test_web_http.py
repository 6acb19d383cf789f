"""The web UI over HTTP, on both backends: sign-in and its defences, sessions and
workspaces, CSRF, tenancy, languages, and the inbox's reads and actions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from frontdesk.accounts.models import Membership, Role
from frontdesk.accounts.service import create_user, ensure_workspace
from frontdesk.conversations.models import DeliveryStatus, Message, MessageType, SenderType
from frontdesk.runtime import Runtime
from frontdesk.web.security import LoginRateLimiter
from tests.factories import Factory, Member, Workspace, unique

PASSWORD = "Correct-Horse-9"  # the factory's password
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MakeClient = Callable[[], httpx.AsyncClient]


@pytest.fixture
async def browser_client(
    app_and_client: tuple[Any, httpx.AsyncClient],
) -> AsyncIterator[MakeClient]:
    """Fresh cookie jars: each client is one browser."""
    app = app_and_client[0]
    app.state.login_limiter = LoginRateLimiter()  # failures of other tests don't count here
    clients: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://frontdesk.test", follow_redirects=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def csrf_of(client: httpx.AsyncClient, path: str = "/app/login") -> str:
    page = await client.get(path)
    found = CSRF.search(page.text)
    assert found, page.text[:300]
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD,
                  **extra: str) -> httpx.Response:
    token = await csrf_of(client)
    return await client.post("/app/login", data={"email": email, "password": password,
                                                 "csrf_token": token, **extra})


async def signed_in(make: MakeClient, member: Member) -> tuple[httpx.AsyncClient, str]:
    client = make()
    r = await sign_in(client, member.email)
    assert r.status_code == 303, r.text[:300]
    return client, await csrf_of(client, "/app/inbox")


async def test_the_session_cookie_is_httponly_and_samesite_and_pages_are_hardened(
    browser_client: MakeClient,
) -> None:
    r = await browser_client().get("/app/login")
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith("frontdesk_session=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"


async def test_pages_need_a_sign_in_and_the_api_keeps_its_json(browser_client: MakeClient) -> None:
    client = browser_client()
    page = await client.get("/app/inbox?view=all")
    assert page.status_code == 303
    assert page.headers["location"] == "/app/login?next=/app/inbox%3Fview%3Dall"
    partial = await client.get("/app/inbox", headers={"HX-Request": "true"})
    assert partial.headers["hx-redirect"] == "/app/login"
    api = await client.get("/api/v1/conversations")
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    wrong = await sign_in(browser_client(), ws.admin.email, "wrong-password")
    unknown = await sign_in(browser_client(), "nobody@nowhere.test", "wrong-password")
    assert wrong.status_code == unknown.status_code == 401
    assert "do not match an account" in wrong.text and "do not match an account" in unknown.text
    assert "frontdesk_session" not in str(wrong.cookies) or "uid" not in wrong.text


async def test_failed_sign_ins_are_limited_per_email_with_a_clear_message(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    client = browser_client()
    for _ in range(5):
        assert (await sign_in(client, ws.admin.email, "guess")).status_code == 401
    locked = await sign_in(client, ws.admin.email)  # even the right password now waits
    assert locked.status_code == 429
    assert "Too many failed sign-ins. Try again in 15 min." in locked.text
    other = await factory.member(ws, Role.AGENT)
    assert (await sign_in(browser_client(), other.email)).status_code == 303


def test_the_rate_limiter_counts_per_email_and_per_address_in_a_sliding_window() -> None:
    limiter = LoginRateLimiter(per_email=3, per_ip=5, window_seconds=60)
    for n in range(3):
        limiter.failed("a@x.test", "10.0.0.1", now=n)
    assert limiter.retry_after("A@X.test", "10.0.0.9", now=3) == 57  # e-mails are one person
    assert limiter.retry_after("a@x.test", "10.0.0.1", now=61) == 0  # the window slid
    for n in range(5):
        limiter.failed(f"p{n}@x.test", "10.0.0.2", now=100)
    # One address trying many people:
    assert limiter.retry_after("fresh@x.test", "10.0.0.2", now=101) == 59
    limiter.succeeded("p0@x.test")
    assert limiter.retry_after("fresh@x.test", "10.0.0.3", now=101) == 0


async def test_a_missing_or_forged_csrf_token_is_refused(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
) -> None:
    ws = await factory.workspace()
    conv = await factory.conversation(ws)
    client, token = await signed_in(browser_client, ws.admin)
    url = f"/app/conversations/{conv['conversation_id']}/reply"
    body = {"content": "forged", "mode": "reply"}
    missing = await client.post(url, data=body)
    forged = await client.post(url, data={**body, "csrf_token": "x" * 43})
    header = await client.post(url, data=body, headers={"X-CSRF-Token": "forged",
                                                        "HX-Request": "true"})
    as_json = await client.post(url, data=body, headers={"Accept": "application/json"})
    assert [r.status_code for r in (missing, forged, header, as_json)] == [403] * 4
    assert "did not come from Frontdesk" in missing.text and "<html" in missing.text
    assert header.headers["hx-retarget"] == "#toasts" and "toast" in header.text
    assert as_json.json()["error"]["code"] == "csrf_failed"
    # The sign-in form is protected too (login CSRF).
    assert (await browser_client().post("/app/login", data={
        "email": ws.admin.email, "password": PASSWORD})).status_code == 403
    ok = await client.post(url, data={**body, "csrf_token": token}, headers={"HX-Request": "true"})
    assert ok.status_code == 200
    messages = (await factory.api.get(f"/api/v1/conversations/{conv['conversation_id']}/messages",
                                      headers=ws.admin.headers)).json()["items"]
    assert [m["content"] for m in messages].count("forged") == 1


async def test_after_sign_in_only_a_local_path_is_followed(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    evil = await sign_in(browser_client(), ws.admin.email, next="//evil.example/app/")
    local = await sign_in(browser_client(), ws.admin.email, next="/app/inbox?view=mine")
    assert evil.headers["location"] == "/app/inbox"
    assert local.headers["location"] == "/app/inbox?view=mine"


async def test_another_workspaces_conversation_is_not_found(
    browser_client: MakeClient, factory: Factory,
) -> None:
    mine, theirs = await factory.workspace(), await factory.workspace()
    other = await factory.conversation(theirs)
    client, token = await signed_in(browser_client, mine.admin)
    cid = other["conversation_id"]
    for path in (f"/app/conversations/{cid}", f"/app/conversations/{cid}/thread",
                 f"/app/conversations/{cid}/row"):
        assert (await client.get(path)).status_code == 404, path
    post = await client.post(f"/app/conversations/{cid}/status",
                             data={"status": "resolved", "csrf_token": token})
    assert post.status_code == 404


async def test_a_person_of_two_workspaces_picks_one_and_switches_without_signing_in(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
) -> None:
    brand_a, brand_b = await factory.workspace(), await factory.workspace()
    for ws, customer in ((brand_a, "Alice of A"), (brand_b, "Bob of B")):
        await factory.incoming(ws, await factory.inbox(ws), name=customer,
                               identifier=unique("c"))
    person = await factory.member(brand_a, Role.AGENT)
    async with runtime.sessions() as session:
        ws_b = await ensure_workspace(session, brand_b.name)
        await create_user(session, ws_b, email=person.email, role=Role.SUPERVISOR)
        await session.commit()
    client = browser_client()
    r = await sign_in(client, person.email)
    assert r.headers["location"] == "/app/workspaces"
    picker = await client.get("/app/workspaces")
    assert brand_a.name in picker.text and brand_b.name in picker.text
    assert (await client.get("/app/inbox")).headers["location"] == "/app/workspaces"

    token = await csrf_of(client, "/app/workspaces")
    await client.post("/app/workspaces", data={"workspace_id": brand_b.id, "csrf_token": token})
    page = (await client.get("/app/inbox?view=all")).text
    assert "Bob of B" in page and "Alice of A" not in page
    await client.post("/app/workspaces", data={"workspace_id": brand_a.id, "csrf_token": token})
    page = (await client.get("/app/inbox?view=all")).text
    assert "Alice of A" in page and "Bob of B" not in page
    outsider = await factory.workspace()
    r = await client.post("/app/workspaces", data={"workspace_id": outsider.id,
                                                   "csrf_token": token})
    assert r.headers["location"] == "/app/workspaces"
    assert "Alice of A" in (await client.get("/app/inbox?view=all")).text  # unchanged

    # Membership is checked on every request: removed from A, the session falls back to B.
    async with runtime.sessions() as session:
        await session.execute(delete(Membership).where(Membership.workspace_id == brand_a.id,
                                                       Membership.user_id == person.user_id))
        await session.commit()
    page = (await client.get("/app/inbox?view=all")).text
    assert "Bob of B" in page and "Alice of A" not in page


async def test_a_password_change_signs_out_the_other_browsers(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    member = await factory.member(ws, Role.AGENT)
    laptop, token = await signed_in(browser_client, member)
    phone, _ = await signed_in(browser_client, member)
    form = {"csrf_token": token, "current_password": "wrong", "new_password": "N3w-password!",
            "confirm_password": "N3w-password!"}
    wrong = await laptop.post("/app/settings/password", data=form)
    assert wrong.status_code == 422 and "The current password is not right." in wrong.text
    mismatch = await laptop.post("/app/settings/password", data={
        **form, "current_password": PASSWORD, "confirm_password": "other"})
    assert mismatch.status_code == 422 and "are not the same" in mismatch.text
    done = await laptop.post("/app/settings/password", data={**form, "current_password": PASSWORD})
    assert done.status_code == 303
    assert "Your password is changed" in (await laptop.get("/app/settings")).text
    assert (await laptop.get("/app/inbox")).status_code == 200
    assert (await phone.get("/app/inbox")).headers["location"].startswith("/app/login")
    assert (await sign_in(browser_client(), member.email, "N3w-password!")).status_code == 303


async def test_the_language_switch_and_arabic_right_to_left(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    client, token = await signed_in(browser_client, ws.admin)
    r = await client.post("/app/locale", data={"locale": "ar", "back": "/app/inbox",
                                               "csrf_token": token})
    assert r.headers["location"] == "/app/inbox"
    page = (await client.get("/app/inbox")).text
    assert '<html lang="ar" dir="rtl">' in page and "محادثاتي" in page
    await client.post("/app/locale", data={"locale": "zh_Hans", "csrf_token": token})
    page = (await client.get("/app/inbox")).text
    assert '<html lang="zh-Hans" dir="ltr">' in page and "我的" in page
    refused = await client.post("/app/locale", data={"locale": "xx", "csrf_token": token},
                                headers={"HX-Request": "true"})
    assert refused.status_code == 422


async def test_message_html_is_cleaned_again_when_shown_and_text_is_escaped(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
) -> None:
    ws = await factory.workspace()
    ident = unique("html-cust")
    conv = await factory.conversation(ws, identifier=ident)
    await factory.incoming(ws, conv["inbox_id"], content="<script>alert('text')</script>",
                           identifier=ident)
    async with runtime.sessions() as session:  # a row stored by something that didn't clean
        session.add(Message(
            workspace_id=ws.id, conversation_id=conv["conversation_id"],
            inbox_id=conv["inbox_id"], message_type=MessageType.INCOMING.value,
            sender_type=SenderType.CONTACT.value, content="Hi",
            content_html='<p>Hi <b>there</b></p><script>alert(1)</script>'
                         '<img src=x onerror="alert(2)"><a href="javascript:alert(3)">link</a>',
            attachments=[], delivery_status=DeliveryStatus.RECEIVED.value))
        await session.commit()
    client, _ = await signed_in(browser_client, ws.admin)
    page = (await client.get(f"/app/conversations/{conv['conversation_id']}")).text
    assert "<p>Hi <b>there</b></p>" in page
    for bad in ("<script>alert", "onerror", "javascript:", "<img"):
        assert bad not in page, bad
    assert "&lt;script&gt;alert(&#39;text&#39;)&lt;/script&gt;" in page


async def test_views_filters_counts_and_actions_go_through_the_services(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    agent = await factory.member(ws, Role.AGENT)
    inbox = await factory.inbox(ws)
    ids = [(await factory.incoming(ws, inbox, name=n, identifier=unique("c")))["conversation_id"]
           for n in ("Alpha Customer", "Beta Customer", "Gamma Customer")]
    admin, admin_token = await signed_in(browser_client, ws.admin)
    hx = {"HX-Request": "true", "X-CSRF-Token": admin_token}
    assert (await admin.post(f"/app/conversations/{ids[0]}/priority", data={"priority": "high"},
                             headers=hx)).status_code == 200
    assert (await admin.post(f"/app/conversations/{ids[1]}/tags", data={"tag": "VIP, refund"},
                             headers=hx)).status_code == 200
    r = await admin.post(f"/app/conversations/{ids[2]}/assign?view=unassigned",
                         data={"assignee": str(agent.user_id)}, headers=hx)
    assert r.status_code == 200
    assert f'<li id="row-{ids[2]}" hx-swap-oob="delete">' in r.text  # left the listed view

    def names(html: str) -> list[str]:
        return re.findall(r'class="row-name"><bdi>([^<]+)</bdi>', html)

    async def listed(query: str) -> list[str]:
        r = await admin.get(f"/app/inbox?{query}", headers={"HX-Request": "true",
                                                             "HX-Target": "list-results"})
        assert r.status_code == 200
        return names(r.text)

    assert await listed("view=all&priority=high") == ["Alpha Customer"]
    assert await listed("view=all&tag=vip") == ["Beta Customer"]
    assert await listed(f"view=all&assignee={agent.user_id}") == ["Gamma Customer"]
    assert await listed("view=unassigned") == ["Beta Customer", "Alpha Customer"]
    assert await listed("view=all&q=gamma") == ["Gamma Customer"]
    counts = (await admin.get("/app/inbox/counts?view=all")).text
    assert re.search(r'id="nav-unassigned".*?class="count">2<', counts, re.S)
    assert re.search(r'id="nav-all".*?class="count">3<', counts, re.S)

    conv = (await factory.api.get(f"/api/v1/conversations/{ids[1]}",
                                  headers=ws.admin.headers)).json()
    assert sorted(conv["tags"]) == ["refund", "vip"]
    # A live update for a list the conversation is not in: no row (204), so it is removed.
    row = await admin.get(f"/app/conversations/{ids[2]}/row?view=unassigned")
    assert row.status_code == 204

    # The services' rules hold on screen: an agent cannot give work to someone else.
    client, token = await signed_in(browser_client, agent)
    denied = await client.post(f"/app/conversations/{ids[0]}/assign",
                               data={"assignee": str(ws.admin.user_id)},
                               headers={"HX-Request": "true", "X-CSRF-Token": token})
    assert denied.status_code == 403 and "toast" in denied.text
    resolved = await client.post(f"/app/conversations/{ids[2]}/status",
                                 data={"status": "resolved"},
                                 headers={"HX-Request": "true", "X-CSRF-Token": token})
    assert resolved.status_code == 200 and "Resolved" in resolved.text
    empty = await client.post(f"/app/conversations/{ids[2]}/reply", data={"content": "  "},
                              headers={"HX-Request": "true", "X-CSRF-Token": token})
    assert empty.status_code == 422 and "Write a message first." in empty.text


async def test_pages_render_for_every_status_and_the_workspace_has_no_conversations(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws: Workspace = await factory.workspace()
    client, _ = await signed_in(browser_client, ws.admin)
    for status in ("open", "pending", "snoozed", "resolved", "closed", "any", "bogus"):
        r = await client.get(f"/app/inbox?view=all&status={status}&inbox_id=99999999")
        assert r.status_code == 200 and "No conversations here." in r.text
    assert (await client.get("/app/settings")).status_code == 200
    assert (await client.get("/app/inbox?cursor=x&view=all")).status_code == 200
    assert (await client.get("/app/inbox/more?cursor=not-a-cursor")).status_code == 422


async def test_a_link_into_another_of_ones_workspaces_switches_to_it_and_no_further(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
) -> None:
    """A push notification (or a colleague's link) names its workspace with `?ws=`: it
    opens from whichever of the person's workspaces is current; a workspace the person is
    not a member of changes nothing."""
    brand_a, brand_b, outsider = (await factory.workspace(), await factory.workspace(),
                                  await factory.workspace())
    in_b = await factory.incoming(brand_b, await factory.inbox(brand_b), name="Bob of B",
                                  identifier=unique("c"))
    in_outsider = await factory.conversation(outsider)
    person = await factory.member(brand_a, Role.AGENT)
    async with runtime.sessions() as session:
        ws_b = await ensure_workspace(session, brand_b.name)
        await create_user(session, ws_b, email=person.email, role=Role.AGENT)
        await session.commit()
    client = browser_client()
    await sign_in(client, person.email)
    token = await csrf_of(client, "/app/workspaces")
    await client.post("/app/workspaces", data={"workspace_id": brand_a.id, "csrf_token": token})

    r = await client.get(f"/app/conversations/{in_b['conversation_id']}?ws={brand_b.id}")
    assert r.status_code == 200 and "Bob of B" in r.text
    theirs = in_outsider["conversation_id"]
    assert (await client.get(f"/app/conversations/{theirs}?ws={outsider.id}")).status_code == 404
    assert "Bob of B" in (await client.get("/app/inbox?view=all")).text  # still in B
