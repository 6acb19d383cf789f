"""Unread conversations in the workspace, over HTTP on both backends: the server marks the
rows of each agent, opening a conversation (the page's POST) reads it, "Mark as unread"
and the bulk actions, the unread filter."""

from __future__ import annotations

import re

from frontdesk.accounts.models import Role
from tests.factories import Factory, Workspace, unique
from tests.web.test_web_http import MakeClient, browser_client, signed_in

__all__ = ["browser_client"]  # the fixture, shared with test_web_http


def unread_rows(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'<li class="row[^"]* unread" id="row-(\d+)"', html)}


def rows(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li class="row[^"]*" id="row-(\d+)"', html)]


def _hx(token: str, target: str | None = None) -> dict[str, str]:
    headers = {"HX-Request": "true", "X-CSRF-Token": token}
    if target:
        headers["HX-Target"] = target
    return headers


async def _two_conversations(factory: Factory, ws: Workspace) -> tuple[int, int]:
    inbox = await factory.inbox(ws)
    first, second = [int((await factory.incoming(ws, inbox, name=n, identifier=unique("c"),
                                                 email=f"{unique(n.lower())}@example.com"))
                          ["conversation_id"]) for n in ("Alpha", "Beta")]
    return first, second


async def test_rows_are_marked_unread_per_agent_and_opening_one_reads_it(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    other_agent = await factory.member(ws, Role.SUPERVISOR)
    first, second = await _two_conversations(factory, ws)
    admin, token = await signed_in(browser_client, ws.admin)

    page = await admin.get("/app/inbox?view=all")
    assert unread_rows(page.text) == {first, second}
    # Showing a conversation is not reading it: the page's script says so with a POST.
    shown = await admin.get(f"/app/conversations/{first}?view=all")
    assert shown.status_code == 200 and first in unread_rows(shown.text)
    newest = max(int(i) for i in re.findall(r'id="msg-(\d+)"', shown.text))
    r = await admin.post(f"/app/conversations/{first}/read", headers=_hx(token),
                         data={"up_to": str(newest)})
    assert r.status_code == 204, r.text[:300]

    page = await admin.get("/app/inbox?view=all")
    assert unread_rows(page.text) == {second}
    row = await admin.get(f"/app/conversations/{first}/row?view=all", headers=_hx(token))
    assert first not in unread_rows(row.text)
    # Another agent's rows are their own.
    other, _ = await signed_in(browser_client, other_agent)
    assert unread_rows((await other.get("/app/inbox?view=all")).text) == {first, second}

    # The customer writes again: unread again, for the reader too.
    conversation = (await factory.api.get(f"/api/v1/conversations/{first}",
                                          headers=ws.admin.headers)).json()
    contact = (await factory.api.get(f"/api/v1/contacts/{conversation['contact_id']}",
                                     headers=ws.admin.headers)).json()
    again = await factory.incoming(ws, conversation["inbox_id"], email=contact["email"],
                                   content="Still waiting")
    assert again["conversation_id"] == first
    assert unread_rows((await admin.get("/app/inbox?view=all")).text) == {first, second}


async def test_mark_as_unread_goes_back_to_the_list_where_the_row_is_unread(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    first, _ = await _two_conversations(factory, ws)
    admin, token = await signed_in(browser_client, ws.admin)
    await admin.post(f"/app/conversations/{first}/read", headers=_hx(token))
    shown = await admin.get(f"/app/conversations/{first}?view=all")
    assert "Mark as unread" in shown.text and first not in unread_rows(shown.text)

    r = await admin.post(f"/app/conversations/{first}/unread?view=all",
                         data={"csrf_token": token})

    assert r.status_code == 303 and r.headers["location"] == "/app/inbox?view=all&status=open"
    assert first in unread_rows((await admin.get(r.headers["location"])).text)


async def test_the_unread_filter_and_the_bulk_read_actions(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    first, second = await _two_conversations(factory, ws)
    admin, token = await signed_in(browser_client, ws.admin)
    filters = {"view": "all", "status": "open", "unread": "1"}

    r = await admin.post("/app/inbox/bulk", headers=_hx(token, "list-results"),
                         data={**filters, "action": "read", "ids": [str(first)]})
    assert r.status_code == 200, r.text[:300]
    assert rows(r.text) == [second]  # the answer is the unread list again

    listed = await admin.get("/app/inbox?view=all&unread=1", headers=_hx(token, "list-results"))
    assert rows(listed.text) == [second]
    page = await admin.get("/app/inbox?view=all&unread=1")
    assert re.search(r'name="unread" value="1" id="filter-unread" checked', page.text)

    r = await admin.post("/app/inbox/bulk", headers=_hx(token, "list-results"),
                         data={**filters, "action": "unread", "ids": [str(first)]})
    assert r.status_code == 200, r.text[:300]
    assert set(rows(r.text)) == {first, second} == unread_rows(r.text)


async def test_another_workspaces_conversation_cannot_be_read_or_marked(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws, other = await factory.workspace(), await factory.api_workspace()
    theirs = (await factory.conversation(other))["conversation_id"]
    admin, token = await signed_in(browser_client, ws.admin)
    for action in ("read", "unread"):
        r = await admin.post(f"/app/conversations/{theirs}/{action}", headers=_hx(token))
        assert r.status_code == 404
    r = await admin.post(f"/app/conversations/{theirs}/read", headers={"HX-Request": "true"})
    assert r.status_code == 403  # no CSRF token, no write
    r = await factory.api.get(f"/api/v1/conversations/{theirs}", headers=other.admin.headers)
    assert r.json()["unread"] is True
