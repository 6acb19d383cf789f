"""The conversation tools' web routes over HTTP, on both backends: CSRF, tenancy, roles,
and text from canned responses and scheduled replies escaped wherever it is shown."""

from __future__ import annotations

import re

import httpx

from frontdesk.accounts.models import Role
from tests.factories import Factory, unique
from tests.web.test_web_http import MakeClient, browser_client, signed_in

__all__ = ["browser_client"]  # the fixture, shared with test_web_http


async def _prefer(client: httpx.AsyncClient, token: str, locale: str, time_zone: str) -> None:
    """The signed-in agent's language and time zone, set on their preferences page."""
    r = await client.post("/app/settings/preferences",
                          data={"locale": locale, "time_zone": time_zone, "csrf_token": token})
    assert r.status_code == 303


async def test_the_tools_need_the_csrf_token_and_another_workspaces_ids_are_not_found(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient,
) -> None:
    mine, theirs = await factory.workspace(), await factory.workspace()
    who = unique("cust")
    first = (await factory.incoming(mine, await factory.inbox(mine), identifier=who))
    second = (await factory.incoming(mine, await factory.inbox(mine), identifier=who))
    other = await factory.conversation(theirs)
    client, token = await signed_in(browser_client, mine.admin)

    merge = f"/app/conversations/{second['conversation_id']}/merge-into"
    target = {"target_id": str(first["conversation_id"])}
    assert (await client.post(merge, data=target)).status_code == 403  # no CSRF token
    cid, mid = other["conversation_id"], other["message_id"]
    for path, data in (
            (f"/app/conversations/{cid}/merge-into", target),
            (merge, {"target_id": str(cid)}),
            (f"/app/conversations/{cid}/messages/{mid}/move", {"target": "new"}),
            (f"/app/conversations/{cid}/schedule",
             {"content": "x", "send_at": "2099-01-01T09:00"}),
    ):
        r = await client.post(path, data={**data, "csrf_token": token})
        assert r.status_code == 404, (path, r.status_code)
    for path in (f"/app/conversations/{cid}/scheduled", f"/app/conversations/{cid}/canned"):
        assert (await client.get(path)).status_code == 404, path

    r = await client.post(merge, data={**target, "csrf_token": token},
                          headers={"HX-Request": "true"})
    assert r.status_code == 204
    assert r.headers["hx-redirect"] == f"/app/conversations/{first['conversation_id']}"
    merged = (await api.get(f"/api/v1/conversations/{second['conversation_id']}",
                            headers=mine.admin.headers)).json()
    assert merged["merged_into_id"] == first["conversation_id"]


async def test_scheduling_reads_the_time_in_the_agents_zone_and_escapes_the_text(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient,
) -> None:
    ws = await factory.workspace()
    conv = await factory.conversation(ws)
    cid = conv["conversation_id"]
    client, token = await signed_in(browser_client, ws.admin)
    await _prefer(client, token, "en", "Asia/Tokyo")
    r = await client.post(f"/app/conversations/{cid}/schedule",
                          data={"content": "<script>alert(1)</script>",
                                "send_at": "2099-06-01T09:00", "csrf_token": token},
                          headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text
    assert "<script>alert(1)" not in r.text and "&lt;script&gt;alert(1)" in r.text
    rows = (await api.get(f"/api/v1/conversations/{cid}/scheduled-messages",
                          headers=ws.admin.headers)).json()["items"]
    assert rows[0]["send_at"].startswith("2099-06-01T00:00:00")  # 09:00 in Tokyo
    r = await client.post(f"/app/conversations/{cid}/schedule",
                          data={"content": "late", "send_at": "2001-01-01T09:00",
                                "csrf_token": token}, headers={"HX-Request": "true"})
    assert r.status_code == 422 and "toast" in r.text


async def test_canned_responses_page_agents_keep_personal_ones_and_text_is_escaped(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient,
) -> None:
    ws = await factory.workspace()
    agent = await factory.member(ws, Role.AGENT)
    client, token = await signed_in(browser_client, agent)
    page = await client.get("/app/settings/canned-responses")
    assert page.status_code == 200 and 'name="scope" value="personal"' in page.text
    # An agent asking for a workspace-wide response is refused, nothing is stored.
    r = await client.post("/app/settings/canned-responses",
                          data={"shortcut": "hi", "content": "x", "scope": "workspace",
                                "csrf_token": token})
    assert r.status_code == 303
    listed = (await api.get("/api/v1/canned-responses", headers=ws.admin.headers)).json()
    assert listed["items"] == []
    r = await client.post("/app/settings/canned-responses",
                          data={"shortcut": "hi", "content": "<img src=x onerror=alert(1)>",
                                "scope": "personal", "csrf_token": token})
    assert r.status_code == 303
    page = await client.get("/app/settings/canned-responses")
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    mine = (await api.get("/api/v1/canned-responses", headers=agent.headers)).json()["items"]
    assert [(c["shortcut"], c["scope"]) for c in mine] == [("hi", "personal")]
    # The composer's picker gets it as JSON text, placeholders filled.
    conv = await factory.conversation(ws)
    r = await client.get(f"/app/conversations/{conv['conversation_id']}/canned")
    assert r.headers["content-type"].startswith("application/json")
    assert [i["content"] for i in r.json()["items"]] == ["<img src=x onerror=alert(1)>"]
    # Deleting someone else's personal response: not found.
    admin, admin_token = await signed_in(browser_client, ws.admin)
    r = await admin.post(f"/app/settings/canned-responses/{mine[0]['id']}/delete",
                         data={"csrf_token": admin_token})
    assert r.status_code == 404


async def test_a_refused_merge_is_explained_in_the_agents_language(
    browser_client: MakeClient, factory: Factory,
) -> None:
    ws = await factory.workspace()
    one, two = await factory.conversation(ws), await factory.conversation(ws)
    client, token = await signed_in(browser_client, ws.admin)
    await _prefer(client, token, "ru", "UTC")
    r = await client.post(f"/app/conversations/{one['conversation_id']}/merge-into",
                          data={"target_id": str(two["conversation_id"]), "csrf_token": token},
                          headers={"HX-Request": "true"})
    assert r.status_code == 409
    assert r.headers["hx-retarget"] == "#toasts"
    assert "принадлежат разным клиентам" in r.text


async def test_a_merged_conversation_points_to_its_survivor_and_refuses_replies_with_409(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient,
) -> None:
    ws = await factory.workspace()
    who = unique("cust")
    first = await factory.incoming(ws, await factory.inbox(ws), identifier=who)
    second = await factory.incoming(ws, await factory.inbox(ws), identifier=who)
    survivor, merged = first["conversation_id"], second["conversation_id"]
    r = await api.post(f"/api/v1/conversations/{survivor}/merge", headers=ws.admin.headers,
                       json={"other_id": merged})
    assert r.status_code == 200, r.text
    client, token = await signed_in(browser_client, ws.admin)

    page = (await client.get(f"/app/conversations/{merged}")).text
    # The banner leads to the conversation it went into; nothing to write or re-status here.
    assert ('<p class="merged-note" role="note">' in page
            and f'href="/app/conversations/{survivor}">#{survivor}</a></p>' in page)
    assert 'id="composer"' not in page
    assert f'action="/app/conversations/{merged}/status' not in page
    assert 'id="composer"' in (await client.get(f"/app/conversations/{survivor}")).text

    hx = {"HX-Request": "true"}
    for path, data in ((f"/app/conversations/{merged}/reply", {"content": "Still there?"}),
                       (f"/app/conversations/{merged}/reply",
                        {"content": "note", "mode": "note"}),
                       (f"/app/conversations/{merged}/status", {"status": "open"})):
        r = await client.post(path, data={**data, "csrf_token": token}, headers=hx)
        assert r.status_code == 409, (path, r.status_code)
        assert 'data-code="conversation_merged"' in r.text
        assert "This conversation was merged into another one; continue there." in r.text
    # In the agent's language, like every other refusal.
    await _prefer(client, token, "ru", "UTC")
    r = await client.post(f"/app/conversations/{merged}/reply",
                          data={"content": "Ещё здесь?", "csrf_token": token}, headers=hx)
    assert r.status_code == 409 and "Этот разговор объединён с другим; продолжайте там." in r.text

    messages = (await api.get(f"/api/v1/conversations/{merged}/messages",
                              headers=ws.admin.headers)).json()["items"]
    assert [m["content"] for m in messages] == [f"Merged into #{survivor}"]
    state = (await api.get(f"/api/v1/conversations/{merged}", headers=ws.admin.headers)).json()
    assert state["status"] == "closed" and state["merged_into_id"] == survivor


async def test_snoozing_until_a_chosen_time_reads_it_in_the_agents_zone(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient,
) -> None:
    ws = await factory.workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    client, token = await signed_in(browser_client, ws.admin)
    await _prefer(client, token, "en", "Asia/Tokyo")
    page = await client.get(f"/app/conversations/{cid}")
    assert f'id="snooze-until-{cid}" type="datetime-local"' in page.text

    r = await client.post(f"/app/conversations/{cid}/status",
                          data={"status": "snoozed", "snooze": "custom",
                                "snooze_until": "2099-06-01T09:00", "csrf_token": token},
                          headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text
    conversation = (await api.get(f"/api/v1/conversations/{cid}",
                                  headers=ws.admin.headers)).json()
    assert conversation["status"] == "snoozed"
    assert conversation["snoozed_until"].startswith("2099-06-01T00:00:00")  # 09:00 in Tokyo


async def test_snoozing_until_a_past_or_unreadable_time_is_refused_in_the_agents_language(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient,
) -> None:
    ws = await factory.workspace()
    cid = (await factory.conversation(ws))["conversation_id"]
    client, token = await signed_in(browser_client, ws.admin)
    await _prefer(client, token, "ru", "UTC")
    for value, english in (("2001-01-01T09:00", "Choose a time in the future to snooze until."),
                           ("soon", "Choose a date and time to snooze until.")):
        r = await client.post(f"/app/conversations/{cid}/status",
                              data={"status": "snoozed", "snooze": "custom",
                                    "snooze_until": value, "csrf_token": token},
                              headers={"HX-Request": "true"})
        assert r.status_code == 422, r.text
        assert "toast" in r.text and english not in r.text  # said in Russian
    conversation = (await api.get(f"/api/v1/conversations/{cid}",
                                  headers=ws.admin.headers)).json()
    assert conversation["status"] == "open" and conversation["snoozed_until"] is None


async def test_a_message_can_move_to_any_of_the_customers_conversations_by_search_or_page(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient,
) -> None:
    ws = await factory.workspace()
    inbox_id = await factory.inbox(ws)
    who = unique("cust")
    older: list[int] = []
    for n in range(24):  # more than a page (20) of the customer's other conversations
        ids = await factory.incoming(ws, inbox_id, identifier=who, content=f"question {n}")
        older.append(ids["conversation_id"])
        await factory.set_status(ws, ids["conversation_id"], "resolved")
    r = await api.patch(f"/api/v1/conversations/{older[0]}", headers=ws.admin.headers,
                        json={"subject": "Broken kettle 100%"})
    assert r.status_code == 200, r.text
    current = await factory.incoming(ws, inbox_id, identifier=who, content="one more thing")
    cid, mid = current["conversation_id"], current["message_id"]
    await factory.incoming(ws, inbox_id, identifier=who, content="and another")
    client, token = await signed_in(browser_client, ws.admin)

    def targets(html: str) -> list[int]:
        return [int(v) for v in re.findall(r'name="target" value="(\d+)"', html)]

    page = await client.get(f"/app/conversations/{cid}")
    first_page = targets(page.text.split(f'id="move-found-{mid}"')[1].split("</fieldset>")[0])
    assert first_page == older[::-1][:20]  # newest activity first
    more = re.search(rf'hx-get="(/app/conversations/{cid}/messages/{mid}/move-targets\?[^"]+)"',
                     page.text)
    assert more
    rest = await client.get(more.group(1).replace("&amp;", "&"))
    assert targets(rest.text) == older[::-1][20:] and "Show more" not in rest.text
    # Search by number (with or without #) or by a piece of the subject (% is literal).
    base = f"/app/conversations/{cid}/messages/{mid}/move-targets"
    for q in (str(older[0]), f"#{older[0]}", "kettle 100%"):
        found = await client.get(base, params={"q": q})
        assert targets(found.text) == [older[0]], q
    assert targets((await client.get(base, params={"q": "100_"})).text) == []
    assert "matches" in (await client.get(base, params={"q": "nothing like it"})).text

    # The oldest one, from beyond the first page, takes the message.
    r = await client.post(f"/app/conversations/{cid}/messages/{mid}/move",
                          data={"target": str(older[0]), "csrf_token": token})
    assert r.status_code == 303, r.text
    moved = (await api.get(f"/api/v1/conversations/{older[0]}/messages",
                           headers=ws.admin.headers)).json()["items"]
    assert "one more thing" in [m["content"] for m in moved]


async def test_another_workspaces_conversation_has_no_move_targets_to_offer(
    browser_client: MakeClient, factory: Factory,
) -> None:
    mine, theirs = await factory.workspace(), await factory.workspace()
    other = await factory.conversation(theirs)
    client, _ = await signed_in(browser_client, mine.admin)
    r = await client.get(f"/app/conversations/{other['conversation_id']}/messages/"
                         f"{other['message_id']}/move-targets", params={"q": "a"})
    assert r.status_code == 404
