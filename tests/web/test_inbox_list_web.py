"""The inbox list on screen, over HTTP on both backends: sort orders, saved views in the
navigation with their counts, and bulk actions on a selection."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from frontdesk.accounts.models import Role
from frontdesk.runtime import Runtime
from frontdesk.web.queries import GROUPED_COUNTS
from tests.factories import Factory, Workspace, unique
from tests.web.test_web_http import MakeClient, browser_client, signed_in

__all__ = ["browser_client"]  # the fixture, shared with test_web_http


def names(html: str) -> list[str]:
    return re.findall(r'class="row-name"><bdi>([^<]+)</bdi>', html)


async def _customers(factory: Factory, ws: Workspace, *who: str) -> list[int]:
    inbox = await factory.inbox(ws)
    return [int((await factory.incoming(ws, inbox, name=n, identifier=unique("c")))
                ["conversation_id"]) for n in who]


def _hx(token: str, target: str | None = None) -> dict[str, str]:
    headers = {"HX-Request": "true", "X-CSRF-Token": token}
    if target:
        headers["HX-Target"] = target
    return headers


async def test_sorts_and_priority_filters_list_in_the_services_order(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    ids = await _customers(factory, ws, "Alpha", "Beta", "Gamma", "Delta")
    for cid, priority in zip(ids, ["low", "urgent", "none", "high"], strict=True):
        r = await factory.api.patch(f"/api/v1/conversations/{cid}", headers=ws.admin.headers,
                                    json={"priority": priority})
        assert r.status_code == 200
    r = await factory.api.post(f"/api/v1/conversations/{ids[0]}/messages",
                               headers=ws.admin.headers, json={"content": "Answered"})
    assert r.status_code == 201
    admin, token = await signed_in(browser_client, ws.admin)

    async def listed(query: str) -> list[str]:
        r = await admin.get(f"/app/inbox?view=all&{query}", headers=_hx(token, "list-results"))
        assert r.status_code == 200, r.text[:300]
        return names(r.text)

    assert await listed("") == ["Alpha", "Delta", "Gamma", "Beta"]
    assert await listed("sort=oldest") == ["Beta", "Gamma", "Delta", "Alpha"]
    assert await listed("sort=priority") == ["Beta", "Delta", "Alpha", "Gamma"]
    # Waiting longest first; Alpha was answered, so nobody waits on it: last.
    assert await listed("sort=waiting") == ["Beta", "Gamma", "Delta", "Alpha"]
    assert await listed("priority=urgent,high&sort=priority") == ["Beta", "Delta"]
    assert await listed("sort=sideways") == await listed("")  # a hand-edited URL still lists
    page = await admin.get("/app/inbox?view=all&sort=oldest")
    assert 'data-sort-dir="asc"' in page.text
    assert '<option value="oldest" selected>' in page.text


async def test_the_priority_filter_shows_and_keeps_several_priorities(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    ids = await _customers(factory, ws, "Alpha", "Beta", "Gamma")
    for cid, priority in zip(ids, ["urgent", "high", "low"], strict=True):
        r = await factory.api.patch(f"/api/v1/conversations/{cid}", headers=ws.admin.headers,
                                    json={"priority": priority})
        assert r.status_code == 200
    r = await factory.api.post("/api/v1/views", headers=ws.admin.headers, json={
        "name": "Hot", "filters": {"priority": ["urgent", "high"]}})
    assert r.status_code == 201, r.text
    admin, token = await signed_in(browser_client, ws.admin)

    def checked(html: str) -> list[str]:
        return re.findall(r'name="priority" value="(\w+)" checked', html)

    # The saved view's two priorities show as two ticked boxes, and its list holds both.
    nav = (await admin.get("/app/inbox")).text
    found = re.search(rf'id="nav-saved-{r.json()["id"]}" href="([^"]+)"', nav)
    assert found
    page = await admin.get(found.group(1).replace("&amp;", "&"))
    assert checked(page.text) == ["urgent", "high"]
    assert sorted(names(page.text)) == ["Alpha", "Beta"]
    # The checkboxes submit the field twice; the comma form of links still works.
    for url in ("/app/inbox?view=all&priority=urgent&priority=high",
                "/app/inbox?view=all&priority=urgent,high"):
        listed = await admin.get(url, headers=_hx(token, "list-results"))
        assert sorted(names(listed.text)) == ["Alpha", "Beta"], url
    assert checked((await admin.get("/app/inbox?view=all&priority=low")).text) == ["low"]
    # Saving the list as a view keeps both.
    saved = await admin.post("/app/views", data={
        "name": "Both", "view": "all", "status": "open", "priority": ["urgent", "high"],
        "csrf_token": token}, headers=_hx(token))
    assert saved.status_code == 200, saved.text[:300]
    assert "priority=urgent%2Chigh" in saved.headers["hx-push-url"]
    views = (await factory.api.get("/api/v1/views", headers=ws.admin.headers)).json()["items"]
    assert next(v for v in views if v["name"] == "Both")["filters"]["priority"] == [
        "urgent", "high"]


async def test_a_saved_view_appears_in_the_nav_with_its_count_and_can_be_renamed_and_deleted(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    agent = await factory.member(ws, Role.AGENT)
    ids = await _customers(factory, ws, "Alpha", "Beta", "Gamma")
    await factory.tag(ws, ids[0], "vip")
    await factory.tag(ws, ids[2], "vip")
    client, token = await signed_in(browser_client, agent)
    r = await client.post("/app/views", headers=_hx(token, "list-region"),
                          data={"name": "VIP customers", "view": "all", "status": "open",
                                "tag": "vip", "sort": "oldest"})
    assert r.status_code == 200, r.text[:500]
    pushed = parse_qs(urlsplit(r.headers["HX-Push-Url"]).query)
    view_id = int(pushed["saved"][0])
    assert pushed["tag"] == ["vip"] and pushed["sort"] == ["oldest"]
    assert names(r.text) == ["Alpha", "Gamma"]
    assert '<h1 id="list-title">VIP customers</h1>' in r.text
    nav = re.search(rf'id="nav-saved-{view_id}".*?</a>', r.text, re.S)
    assert nav and 'aria-current="page"' in nav.group(0)
    assert re.search(r'class="count">2<', nav.group(0))

    # A text search view is listed but not counted (it would read every message).
    r = await client.post("/app/views", headers=_hx(token, "list-region"),
                          data={"name": "Beta search", "view": "all", "q": "beta"})
    assert r.status_code == 200
    page = (await client.get("/app/inbox")).text
    searched = re.search(r'<span class="nav-label">Beta search</span>.*?</a>', page, re.S)
    assert searched and 'class="count"' not in searched.group(0)

    # Counts follow the conversations: the tag goes on a third one.
    await factory.tag(ws, ids[1], "vip")
    counts = (await client.get("/app/inbox/counts?view=all")).text
    assert re.search(rf'id="nav-saved-{view_id}".*?class="count">3<', counts, re.S)

    r = await client.post(f"/app/views/{view_id}/rename", headers=_hx(token, "list-region"),
                          data={"name": "  Big   spenders "})
    assert r.status_code == 200
    assert '<h1 id="list-title">Big spenders</h1>' in r.text
    blank = await client.post(f"/app/views/{view_id}/rename", headers=_hx(token),
                              data={"name": "   "})
    assert blank.status_code == 422 and "Give the view a name." in blank.text

    # Personal: nobody else sees it, or can change it.
    other, other_token = await signed_in(browser_client, ws.admin)
    assert "Big spenders" not in (await other.get("/app/inbox")).text
    r = await other.post(f"/app/views/{view_id}/delete", headers=_hx(other_token))
    assert r.status_code == 404
    # An agent cannot share a view, even with a forged form.
    r = await client.post("/app/views", headers=_hx(token), data={"name": "All", "shared": "1"})
    assert r.status_code == 403

    r = await client.post(f"/app/views/{view_id}/delete", headers=_hx(token, "list-region"),
                          data={"view": "all", "tag": "vip"})
    assert r.status_code == 200
    assert "saved=" not in r.headers["HX-Push-Url"]
    assert "Big spenders" not in (await client.get("/app/inbox")).text


async def test_a_shared_view_is_made_by_a_supervisor_and_seen_by_agents(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    supervisor = await factory.member(ws, Role.SUPERVISOR)
    agent = await factory.member(ws, Role.AGENT)
    await _customers(factory, ws, "Alpha", "Beta")
    boss, token = await signed_in(browser_client, supervisor)
    assert 'name="shared"' in (await boss.get("/app/inbox")).text
    r = await boss.post("/app/views", headers=_hx(token, "list-region"),
                        data={"name": "Nobody's yet", "shared": "1", "view": "unassigned"})
    assert r.status_code == 200
    client, _ = await signed_in(browser_client, agent)
    page = (await client.get("/app/inbox")).text
    assert 'name="shared"' not in page
    assert re.search(r'<span class="nav-label">Nobody&#39;s yet</span>\s*<span class="sr-only">'
                     r'Shared</span>\s*<span class="count">2<', page)
    assert 'id="view-menu"' not in (await client.get(
        f"/app/inbox?{urlsplit(r.headers['HX-Push-Url']).query}")).text


async def test_bulk_actions_on_a_selection_answer_the_list_and_counts(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    ids = await _customers(factory, ws, "Alpha", "Beta", "Gamma")
    other = await factory.workspace()
    theirs = await _customers(factory, other, "Stranger")
    admin, token = await signed_in(browser_client, ws.admin)
    filters = {"view": "all", "status": "open"}
    r = await admin.post("/app/inbox/bulk", headers=_hx(token, "list-results"),
                         data={**filters, "action": "resolve", "ids": [str(ids[0]), str(ids[2])]})
    assert r.status_code == 200, r.text[:500]
    assert names(r.text) == ["Beta"]
    assert re.search(r'id="nav-all".*?class="count">1<', r.text, re.S)
    assert re.search(r'id="status-tabs"[^>]*hx-swap-oob="true"', r.text)

    r = await admin.post("/app/inbox/bulk", headers=_hx(token, "list-results"),
                         data={**filters, "action": "tag", "bulk_tag": "later, VIP",
                               "ids": [str(ids[1])]})
    assert r.status_code == 200
    conv = (await factory.api.get(f"/api/v1/conversations/{ids[1]}",
                                  headers=ws.admin.headers)).json()
    assert conv["tags"] == ["later", "vip"]
    r = await admin.post("/app/inbox/bulk", headers=_hx(token, "list-results"),
                         data={**filters, "action": "assign", "assign_to": "me",
                               "ids": [str(ids[1])]})
    assert r.status_code == 200
    conv = (await factory.api.get(f"/api/v1/conversations/{ids[1]}",
                                  headers=ws.admin.headers)).json()
    assert conv["assignee_id"] == ws.admin.user_id

    # Another workspace's id in the selection: refused, nothing of anyone's changed.
    r = await admin.post("/app/inbox/bulk", headers=_hx(token),
                         data={**filters, "action": "resolve",
                               "ids": [str(ids[1]), str(theirs[0])]})
    assert r.status_code == 404 and "toast" in r.text
    for cid, who in ((ids[1], ws), (theirs[0], other)):
        state = (await factory.api.get(f"/api/v1/conversations/{cid}",
                                       headers=who.admin.headers)).json()
        assert state["status"] == "open"
    r = await admin.post("/app/inbox/bulk", headers=_hx(token),
                         data={**filters, "action": "resolve"})
    assert r.status_code == 422 and "Select conversations first." in r.text
    # Without the CSRF token nothing happens.
    r = await admin.post("/app/inbox/bulk", headers={"HX-Request": "true"},
                         data={**filters, "action": "resolve", "ids": [str(ids[1])]})
    assert r.status_code == 403


async def test_channels_appear_in_the_nav_when_there_are_several(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    await _customers(factory, ws, "Alpha")
    admin, token = await signed_in(browser_client, ws.admin)
    assert "Channels" not in (await admin.get("/app/inbox")).text
    r = await factory.api.post("/api/v1/inboxes", headers=ws.admin.headers,
                               json={"name": "Support mail", "channel": "email",
                                     "email": f"{unique('support')}@example.com"})
    assert r.status_code == 201, r.text
    page = (await admin.get("/app/inbox")).text
    assert "Channels" in page
    assert re.search(r'channel=api[^"]*".*?class="count">1<', page, re.S)
    r = await admin.get("/app/inbox?view=all&channel=email", headers=_hx(token, "list-results"))
    assert names(r.text) == []
    r = await admin.get("/app/inbox?view=all&channel=api", headers=_hx(token, "list-results"))
    assert names(r.text) == ["Alpha"]


async def test_counts_are_kept_until_a_conversation_changes_and_cover_the_work_to_do(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = await factory.workspace()
    active = ("open", "pending", "snoozed")

    async def groups() -> list[Any]:
        async with runtime.read_sessions() as session:
            return await GROUPED_COUNTS.groups(session, ws.id, active)

    assert await groups() == []  # no conversations yet; then the first ones are counted
    ids = await _customers(factory, ws, "Alpha", "Beta")
    first = await groups()
    assert sum(n for *_, n in first) == 2
    assert await groups() is first  # nothing changed: the same scan, not a new one
    await factory.set_status(ws, ids[0], "pending")
    second = await groups()
    assert second is not first
    assert sorted((g[0], g[5]) for g in second) == [("open", 1), ("pending", 1)]
    await factory.incoming(ws, await factory.inbox(ws), name="Gamma", identifier=unique("c"))
    assert sum(n for *_, n in await groups()) == 3

    # Pages asking at once after a change (every agent's live update) share one recount.
    await factory.set_status(ws, ids[0], "open")
    recounts = 0
    recount = GROUPED_COUNTS._recount

    async def counted(*args: Any) -> Any:
        nonlocal recounts
        recounts += 1
        return await recount(*args)

    monkeypatch.setattr(GROUPED_COUNTS, "_recount", counted)
    together = await asyncio.gather(*(groups() for _ in range(6)))
    assert recounts == 1
    assert all(found is together[0] for found in together)
    assert {g[0] for g in together[0]} == {"open"} and sum(g[5] for g in together[0]) == 3
    monkeypatch.undo()

    # On screen: resolved and closed are counted only when they are the list's status.
    await factory.set_status(ws, ids[1], "resolved")
    admin, _ = await signed_in(browser_client, ws.admin)
    page = (await admin.get("/app/inbox?view=all")).text
    tabs = re.search(r'<nav class="status-tabs".*?</nav>', page, re.S)
    assert tabs
    tab = {s: re.search(rf'status={s}[^"]*"[^>]*>\s*[^<]*(<span class="count">(\d+)<)?',
                        tabs.group(0)) for s in ("open", "pending", "resolved", "any")}
    assert {s: m.group(2) if m else "?" for s, m in tab.items()} == {
        "open": "2", "pending": "0", "resolved": None, "any": None}
    tabs = (await admin.get("/app/inbox?view=all&status=resolved")).text
    assert re.search(r'status=resolved[^"]*"[^>]*>\s*[^<]*<span class="count">1<', tabs)
    assert re.search(r'id="nav-all".*?class="count">1<', tabs, re.S)
