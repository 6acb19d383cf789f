"""The conversation view over HTTP on both backends: a long thread opens at its newest
messages and pages back, each message and list row shows its channel, the contact's history
pages, "Assign to me" is offered only where the service accepts it, and the services'
refusals reach agents in their own language."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from sqlalchemy import event

from frontdesk.accounts.models import Role
from frontdesk.runtime import Runtime
from frontdesk.web.contact_page import TIMELINE_PAGE
from frontdesk.web.inbox import HISTORY_PAGE, THREAD_PAGE
from tests.factories import Factory, Member, Workspace, unique
from tests.web.test_email_web import a_mail
from tests.web.test_web_http import MakeClient, browser_client, signed_in

__all__ = ["browser_client"]  # the fixture, shared with test_web_http


def _hx(token: str) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRF-Token": token}


def _contents(page: str) -> list[str]:
    """The texts of the thread's messages, in the order shown."""
    return [html.unescape(t) for t in
            re.findall(r'<div class="msg-content" dir="auto">([^<]*)</div>', page)]


def _earlier_link(page: str) -> str | None:
    found = re.search(r'href="(/app/conversations/\d+/earlier\?cursor=[^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


async def _in_locale(client: httpx.AsyncClient, token: str, locale: str) -> None:
    r = await client.post("/app/locale", data={"locale": locale, "csrf_token": token,
                                               "back": "/app/inbox"})
    assert r.status_code == 303, r.text[:300]


# --- a long thread -------------------------------------------------------------------------


async def test_a_long_thread_opens_at_its_newest_messages_and_pages_back_to_the_first(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    conversation = await factory.conversation(ws)
    cid = conversation["conversation_id"]
    total_replies = THREAD_PAGE + 30
    await factory.replies(ws, cid, total_replies)
    client, token = await signed_in(browser_client, ws.admin)

    page = (await client.get(f"/app/conversations/{cid}")).text
    shown = _contents(page)
    assert len(shown) == THREAD_PAGE
    assert shown[-1] == f"reply {total_replies - 1}"  # the newest, at the bottom
    assert shown[0] == f"reply {total_replies - THREAD_PAGE}"
    assert "Show earlier messages" in page
    link = _earlier_link(page)
    assert link is not None

    earlier = await client.get(link, headers=_hx(token))
    assert earlier.status_code == 200, earlier.text[:300]
    older = _contents(earlier.text)
    # The customer's first message and the replies before the first page, oldest first.
    assert older == ["Hello, I need help"] + [f"reply {n}" for n in
                                               range(total_replies - THREAD_PAGE)]
    assert _earlier_link(earlier.text) is None  # the beginning: no further link

    # A reply just sent shows at once, however long the thread.
    r = await client.post(f"/app/conversations/{cid}/reply", headers=_hx(token),
                          data={"content": "The newest of all", "mode": "reply"})
    assert r.status_code == 200, r.text[:300]
    assert _contents(r.text)[-1] == "The newest of all"
    assert len(_contents(r.text)) == THREAD_PAGE

    # A live refresh keeps the earlier pages the agent opened (back to the oldest shown),
    # and so does an action that redraws the thread (the page names its oldest message).
    first_id = (await factory.api.get(f"/api/v1/conversations/{cid}/messages",
                                      params={"limit": 1}, headers=ws.admin.headers)
                ).json()["items"][0]["id"]
    r = await client.post(f"/app/conversations/{cid}/status",
                          headers={**_hx(token), "X-Thread-From": str(first_id)},
                          data={"status": "pending"})
    assert r.status_code == 200, r.text[:300]
    assert _contents(r.text)[0] == "Hello, I need help"
    refreshed = await client.get(f"/app/conversations/{cid}/thread?from={first_id}",
                                 headers=_hx(token))
    assert _contents(refreshed.text)[0] == "Hello, I need help"
    assert _contents(refreshed.text)[-1] == "The newest of all"
    assert _earlier_link(refreshed.text) is None


async def test_earlier_messages_of_another_workspace_are_not_found(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws, other = await factory.workspace(), await factory.workspace()
    cid = (await factory.conversation(other))["conversation_id"]
    await factory.replies(other, cid, THREAD_PAGE + 1)
    owner, _ = await signed_in(browser_client, other.admin)
    link = _earlier_link((await owner.get(f"/app/conversations/{cid}")).text)
    assert link is not None
    stranger, token = await signed_in(browser_client, ws.admin)
    r = await stranger.get(link, headers=_hx(token))
    assert r.status_code == 404
    assert "Hello, I need help" not in r.text


async def test_a_stale_or_forged_earlier_link_is_refused_in_the_agents_language(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    await factory.replies(ws, cid, 2)
    client, token = await signed_in(browser_client, ws.admin)
    await _in_locale(client, token, "ru")
    ascending = (await factory.api.get(f"/api/v1/conversations/{cid}/messages",
                                       params={"limit": 1}, headers=ws.admin.headers)
                 ).json()["next_cursor"]
    assert ascending
    for cursor in ("nonsense", ascending):  # not a cursor; a cursor of the other order
        r = await client.get(f"/app/conversations/{cid}/earlier", params={"cursor": cursor},
                             headers=_hx(token))
        assert r.status_code == 422, (cursor, r.text[:500])
        assert 'data-code="invalid_cursor"' in r.text and "обновите страницу" in r.text


# --- channels ------------------------------------------------------------------------------


async def test_each_message_and_list_row_shows_the_channel_it_came_through(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
) -> None:
    """After a merge an e-mail thread and an API thread share one conversation: every
    message still says where it came from."""
    ws = await factory.workspace()
    email = f"{unique('dana')}@customer.example"
    api_inbox = await factory.inbox(ws)
    by_api = await factory.incoming(ws, api_inbox, content="Sent from the app",
                                    identifier=unique("dana"), email=email, name="Dana")
    _, address = await factory.email_inbox(ws)
    mail_conversation, _ = await a_mail(runtime, address, sender=f"Dana <{email}>",
                                        body="Sent by mail")
    by_mail = {"conversation_id": mail_conversation}
    r = await factory.api.post(f"/api/v1/conversations/{by_api['conversation_id']}/merge",
                               headers=ws.admin.headers,
                               json={"other_id": by_mail["conversation_id"]})
    assert r.status_code == 200, r.text
    client, _ = await signed_in(browser_client, ws.admin)

    page = (await client.get(f"/app/conversations/{by_api['conversation_id']}")).text
    thread = page[page.index('id="thread"'):page.index('id="contact-panel"')]
    channels = re.findall(r'class="msg msg-\w+" id="msg-\d+".*?data-channel="(\w+)"', thread,
                          re.S)
    assert channels == ["api", "email"] or channels == ["email", "api"]
    assert 'aria-label="Via E-mail"' in thread and 'aria-label="Via API"' in thread

    listed = (await client.get("/app/inbox?view=all&status=any")).text
    rows = listed[listed.index('id="rows"'):]
    assert re.search(rf'id="row-{by_api["conversation_id"]}".*?data-channel="api"', rows, re.S)
    assert re.search(rf'id="row-{by_mail["conversation_id"]}".*?data-channel="email"', rows,
                     re.S)


async def test_the_inbox_list_reads_the_channels_once_however_many_rows(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
) -> None:
    """The channel icon of each row comes from the inboxes loaded once per request, not a
    query per row."""
    ws = await factory.workspace()
    inbox = await factory.inbox(ws)
    client, _ = await signed_in(browser_client, ws.admin)
    engine = runtime.read_engine.sync_engine

    async def inbox_queries_for_a_list_of(conversations: int) -> int:
        for _ in range(conversations):
            await factory.incoming(ws, inbox, identifier=unique("c"))
        seen: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            # Only reads of inboxes: the dispatcher shares the engine on PostgreSQL.
            if "FROM inboxes" in statement:
                seen.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            r = await client.get("/app/inbox?view=all")
            assert r.status_code == 200
            assert r.text.count('data-channel="api"') >= conversations
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(seen)

    assert await inbox_queries_for_a_list_of(2) == await inbox_queries_for_a_list_of(12)


# --- the contact's history -----------------------------------------------------------------


async def test_the_sidebar_pages_through_all_of_the_contacts_other_conversations(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    customer = unique("regular")
    first = await factory.conversation(ws, identifier=customer)
    cid = first["conversation_id"]
    others = HISTORY_PAGE + 5
    for _ in range(others):  # each in a new inbox: a conversation of its own
        inbox = await factory.inbox(ws)
        await factory.incoming(ws, inbox, identifier=customer)
    client, token = await signed_in(browser_client, ws.admin)
    page = (await client.get(f"/app/conversations/{cid}")).text
    panel = page[page.index('id="contact-panel"'):]
    listed = re.findall(r'<li>\s*<a href="/app/conversations/(\d+)\?', panel)
    assert len(listed) == HISTORY_PAGE
    more = re.search(r'href="(/app/conversations/\d+/history\?[^"]*cursor=[^"]+)"', panel)
    assert more
    rest = await client.get(html.unescape(more.group(1)), headers=_hx(token))
    assert rest.status_code == 200, rest.text[:300]
    listed += re.findall(r'<li>\s*<a href="/app/conversations/(\d+)\?', rest.text)
    assert len(listed) == others and len(set(listed)) == others
    assert str(cid) not in listed
    assert "/history?" not in rest.text  # the last page


async def test_the_contact_page_timeline_pages_through_every_conversation(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    customer = unique("loyal")
    total = TIMELINE_PAGE + 3
    contact_id = 0
    for _ in range(total):
        inbox = await factory.inbox(ws)
        contact_id = (await factory.incoming(ws, inbox, identifier=customer))["contact_id"]
    client, token = await signed_in(browser_client, ws.admin)
    page = (await client.get(f"/app/contacts/{contact_id}")).text
    ids = re.findall(r'id="timeline-(\d+)"', page)
    assert len(ids) == TIMELINE_PAGE
    assert 'aria-label="Via API"' in page
    more = re.search(r'href="(/app/contacts/\d+/timeline\?cursor=[^"]+)"', page)
    assert more
    rest = await client.get(html.unescape(more.group(1)), headers=_hx(token))
    assert rest.status_code == 200
    ids += re.findall(r'id="timeline-(\d+)"', rest.text)
    assert len(ids) == total == len(set(ids))
    assert "/timeline?" not in rest.text


# --- assigning, and refusals in the agent's language ----------------------------------------


async def _assigned_to_colleague(factory: Factory) -> tuple[Workspace, Member, Member, int]:
    ws = await factory.workspace()
    agent = await factory.member(ws, Role.AGENT)
    colleague = await factory.member(ws, Role.AGENT)
    cid = (await factory.conversation(ws))["conversation_id"]
    await factory.assign(ws, cid, colleague)
    return ws, agent, colleague, cid


async def test_assign_to_me_is_not_offered_on_another_agents_conversation(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws, agent, _, cid = await _assigned_to_colleague(factory)
    supervisor = await factory.member(ws, Role.SUPERVISOR)
    client, token = await signed_in(browser_client, agent)
    await _in_locale(client, token, "ru")
    head = (await client.get(f"/app/conversations/{cid}")).text
    assert 'data-shortcut="assign-me"' not in head
    # The `a` key shows this, translated, instead of the service's refusal.
    refusal = re.search(r'data-shortcut-refusal="assign-me">([^<]+)<', head)
    assert refusal and "супервизор" in refusal.group(1)
    assert re.search(r'<select id="assignee-\d+" name="assignee" disabled', head)

    boss, _ = await signed_in(browser_client, supervisor)
    head = (await boss.get(f"/app/conversations/{cid}")).text
    assert 'data-shortcut="assign-me"' in head and "data-shortcut-refusal" not in head

    # Unassigned, the agent may take it.
    await factory.assign(ws, cid, None)
    head = (await client.get(f"/app/conversations/{cid}")).text
    assert 'data-shortcut="assign-me"' in head


async def test_a_refused_assignment_reaches_the_agent_in_their_language(
    browser_client: MakeClient, factory: Factory,
) -> None:
    _, agent, _, cid = await _assigned_to_colleague(factory)
    client, token = await signed_in(browser_client, agent)
    await _in_locale(client, token, "ar")
    r = await client.post(f"/app/conversations/{cid}/assign", headers=_hx(token),
                          data={"assignee": "me"})
    assert r.status_code == 403
    assert 'data-code="not_yours"' in r.text
    assert "another agent" not in r.text
    assert "مشرف" in r.text  # "supervisor"


async def test_a_missing_conversation_is_explained_in_the_agents_language(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    client, token = await signed_in(browser_client, ws.admin)
    await _in_locale(client, token, "ru")
    r = await client.get("/app/conversations/999999999")
    assert r.status_code == 404
    assert 'data-code="not_found"' in r.text
    assert "was not found" not in r.text and "не найдено" in r.text


async def test_a_bulk_action_refused_by_the_service_is_translated(
    browser_client: MakeClient, factory: Factory,
) -> None:
    _, agent, _, cid = await _assigned_to_colleague(factory)
    client, token = await signed_in(browser_client, agent)
    await _in_locale(client, token, "zh_Hans")
    r = await client.post("/app/inbox/bulk", headers=_hx(token),
                          data={"ids": [str(cid)], "action": "assign", "assign_to": "me"})
    assert r.status_code == 403, r.text[:300]
    assert 'data-code="not_yours"' in r.text and "主管" in r.text


async def test_a_reply_to_a_merged_conversation_is_refused_in_the_agents_language(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    customer = unique("twice")
    first = await factory.conversation(ws, identifier=customer)
    second = await factory.conversation(ws, identifier=customer)
    r = await factory.api.post(f"/api/v1/conversations/{second['conversation_id']}/merge",
                               headers=ws.admin.headers,
                               json={"other_id": first["conversation_id"]})
    assert r.status_code == 200, r.text
    client, token = await signed_in(browser_client, ws.admin)
    await _in_locale(client, token, "ar")
    r = await client.post(f"/app/conversations/{first['conversation_id']}/reply",
                          headers=_hx(token), data={"content": "Still there?", "mode": "reply"})
    assert r.status_code == 409
    assert 'data-code="conversation_merged"' in r.text
    assert "merged into" not in r.text


async def test_merging_into_a_merged_conversation_names_where_it_went_in_the_agents_language(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    customer = unique("thrice")
    first, second, third = [(await factory.conversation(ws, identifier=customer))
                            ["conversation_id"] for _ in range(3)]
    r = await factory.api.post(f"/api/v1/conversations/{second}/merge",
                               headers=ws.admin.headers, json={"other_id": first})
    assert r.status_code == 200, r.text
    client, token = await signed_in(browser_client, ws.admin)
    await _in_locale(client, token, "ru")
    r = await client.post(f"/app/conversations/{third}/merge-into", headers=_hx(token),
                          data={"target_id": str(first)})
    assert r.status_code == 409
    assert 'data-code="already_merged"' in r.text
    assert f"уже объединён с #{second}; продолжайте там" in r.text
