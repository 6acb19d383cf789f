"""Contact notes and tags in the web UI over HTTP, on both backends: added, edited and
deleted from the contact page and the conversation's contact sidebar, by the roles that
may; refused without a CSRF token; another workspace's contacts and notes are not found;
note text is escaped, never rendered as HTML."""

from __future__ import annotations

from typing import Any

import httpx

from frontdesk.accounts.models import Role
from tests.factories import Factory, Workspace, unique
from tests.web.test_admin_and_contacts_http import (  # noqa: F401 (a fixture)
    MakeClient,
    browser_client,
    open_browser,
)

SIDEBAR = {"HX-Request": "true", "HX-Target": "contact-extras"}


async def _contact(factory: Factory, ws: Workspace) -> tuple[int, int]:
    made = await factory.conversation(ws, identifier=unique("cust"), name="Emily Carter")
    return int(made["contact_id"]), int(made["conversation_id"])


async def _api_contact(api: httpx.AsyncClient, ws: Workspace, contact_id: int) -> dict[str, Any]:
    r = await api.get(f"/api/v1/contacts/{contact_id}", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _api_notes(api: httpx.AsyncClient, ws: Workspace, contact_id: int) -> list[Any]:
    r = await api.get(f"/api/v1/contacts/{contact_id}/notes", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_an_agent_notes_and_tags_a_contact_on_its_page(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient  # noqa: F811
) -> None:
    ws = await factory.workspace()
    cid, _ = await _contact(factory, ws)
    agent = await open_browser(browser_client, await factory.member(ws, Role.AGENT))

    page = await agent.follow(f"/app/contacts/{cid}/tags", tag="VIP, churn-risk")
    assert "The tags are saved." in page.text
    assert (await _api_contact(api, ws, cid))["tags"] == ["churn-risk", "vip"]
    page = await agent.follow(f"/app/contacts/{cid}/tags/remove", tag="churn-risk")
    assert "The tag is removed." in page.text
    assert (await _api_contact(api, ws, cid))["tags"] == ["vip"]
    page = await agent.follow(f"/app/contacts/{cid}/tags", tag=" , ")
    assert "A tag is 1 to 100 characters." in page.text

    page = await agent.follow(f"/app/contacts/{cid}/notes",
                              body="Prefers calls <script>alert(1)</script> after 6 pm")
    assert "The note is added." in page.text
    assert "· edited" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)</script>" not in page.text
    (note,) = await _api_notes(api, ws, cid)
    assert note["body"] == "Prefers calls <script>alert(1)</script> after 6 pm"
    page = await agent.follow(f"/app/contacts/{cid}/notes", body="   ")
    assert "Write the note first." in page.text
    assert len(await _api_notes(api, ws, cid)) == 1

    page = await agent.follow(f"/app/contacts/{cid}/notes/{note['id']}/edit",
                              body="Prefers calls after 6 pm")
    assert "The note is saved." in page.text
    assert "· edited" in page.text
    assert [n["body"] for n in await _api_notes(api, ws, cid)] == ["Prefers calls after 6 pm"]
    page = await agent.follow(f"/app/contacts/{cid}/notes/{note['id']}/delete")
    assert "The note is deleted." in page.text
    assert await _api_notes(api, ws, cid) == []


async def test_only_the_author_or_a_supervisor_changes_a_note(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient  # noqa: F811
) -> None:
    ws = await factory.workspace()
    cid, _ = await _contact(factory, ws)
    author = await factory.member(ws, Role.AGENT)
    note = await factory.contact_note(ws, cid, "Asked for a discount", author=author)
    other = await open_browser(browser_client, await factory.member(ws, Role.AGENT))
    lead = await open_browser(browser_client, await factory.member(ws, Role.SUPERVISOR))
    edit, delete = (f"/app/contacts/{cid}/notes/{note['id']}/edit",
                    f"/app/contacts/{cid}/notes/{note['id']}/delete")

    page = await other.get(f"/app/contacts/{cid}")
    assert "Asked for a discount" in page.text
    assert f'action="{edit}"' not in page.text  # no controls for someone else's note
    assert (await other.post(edit, body="mine now")).status_code == 403
    assert (await other.post(delete)).status_code == 403
    assert [n["body"] for n in await _api_notes(api, ws, cid)] == ["Asked for a discount"]

    assert f'action="{edit}"' in (await lead.get(f"/app/contacts/{cid}")).text
    await lead.follow(edit, body="Discount agreed")
    (kept,) = await _api_notes(api, ws, cid)
    assert kept["body"] == "Discount agreed" and kept["author_user_id"] == author.user_id
    await lead.follow(delete)
    assert await _api_notes(api, ws, cid) == []


async def test_the_conversation_sidebar_shows_the_latest_notes_and_changes_in_place(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient  # noqa: F811
) -> None:
    ws = await factory.workspace()
    cid, conversation_id = await _contact(factory, ws)
    for n in range(4):
        await factory.contact_note(ws, cid, f"Note number {n}")
    agent = await open_browser(browser_client, await factory.member(ws, Role.AGENT))
    pane = await agent.get(f"/app/conversations/{conversation_id}")
    assert f'hx-get="/app/contacts/{cid}/sidebar"' in pane.text

    side = await agent.get(f"/app/contacts/{cid}/sidebar")
    assert side.status_code == 200
    assert [f"Note number {n}" in side.text for n in range(4)] == [False, True, True, True]
    assert f'href="/app/contacts/{cid}#notes-title"' in side.text  # the link to all of them

    r = await agent.client.post(f"/app/contacts/{cid}/tags", headers=SIDEBAR,
                                data={"tag": "vip", "csrf_token": agent.token})
    assert r.status_code == 200 and 'id="contact-extras"' in r.text and "vip" in r.text
    r = await agent.client.post(f"/app/contacts/{cid}/notes", headers=SIDEBAR,
                                data={"body": "Called back <b>twice</b>",
                                      "csrf_token": agent.token})
    assert r.status_code == 200
    assert "Called back &lt;b&gt;twice&lt;/b&gt;" in r.text and "Note number 1" not in r.text
    r = await agent.client.post(f"/app/contacts/{cid}/notes", headers=SIDEBAR,
                                data={"body": " ", "csrf_token": agent.token})
    assert r.status_code == 422 and "Write the note first." in r.text
    r = await agent.client.post(f"/app/contacts/{cid}/tags/remove", headers=SIDEBAR,
                                data={"tag": "vip", "csrf_token": agent.token})
    assert r.status_code == 200 and 'id="contact-extras"' in r.text
    assert (await _api_contact(api, ws, cid))["tags"] == []
    assert len(await _api_notes(api, ws, cid)) == 5


async def test_the_contact_list_is_filtered_by_tag(
    browser_client: MakeClient, factory: Factory  # noqa: F811
) -> None:
    ws = await factory.workspace()
    vip, _ = await _contact(factory, ws)
    plain = int((await factory.conversation(ws, identifier=unique("cust"),
                                          name="Plain Person"))["contact_id"])
    await factory.contact_tags(ws, vip, "vip")
    agent = await open_browser(browser_client, await factory.member(ws, Role.AGENT))
    everyone = await agent.get("/app/contacts")
    assert f'href="/app/contacts/{plain}"' in everyone.text
    assert '<option value="vip">vip</option>' in everyone.text
    tagged = await agent.get("/app/contacts?tag=vip")
    assert f'href="/app/contacts/{vip}"' in tagged.text
    assert f'href="/app/contacts/{plain}"' not in tagged.text
    none = await agent.get("/app/contacts?tag=nobody")
    assert "No contact is tagged “nobody”." in none.text


async def test_forms_without_the_csrf_token_are_refused(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient  # noqa: F811
) -> None:
    ws = await factory.workspace()
    cid, _ = await _contact(factory, ws)
    note = await factory.contact_note(ws, cid, "Keep me")
    agent = await open_browser(browser_client, await factory.member(ws, Role.AGENT))
    for path, data in ((f"/app/contacts/{cid}/notes", {"body": "forged"}),
                       (f"/app/contacts/{cid}/notes/{note['id']}/edit", {"body": "forged"}),
                       (f"/app/contacts/{cid}/notes/{note['id']}/delete", {}),
                       (f"/app/contacts/{cid}/tags", {"tag": "forged"})):
        missing = await agent.client.post(path, data=data)
        forged = await agent.client.post(path, data={**data, "csrf_token": "x" * 43})
        assert (missing.status_code, forged.status_code) == (403, 403), path
    assert [n["body"] for n in await _api_notes(api, ws, cid)] == ["Keep me"]
    assert (await _api_contact(api, ws, cid))["tags"] == []


async def test_another_workspace_contacts_and_notes_are_not_found(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient  # noqa: F811
) -> None:
    a, b = await factory.workspace(), await factory.workspace()
    cid, _ = await _contact(factory, a)
    await factory.contact_tags(a, cid, "a-secret-tag")
    note = await factory.contact_note(a, cid, "A secret note")
    mine, _ = await _contact(factory, b)
    intruder = await open_browser(browser_client, b.admin)
    assert (await intruder.get(f"/app/contacts/{cid}/sidebar")).status_code == 404
    posts: list[tuple[str, dict[str, str]]] = [
        (f"/app/contacts/{cid}/notes", {"body": "mine now"}),
        (f"/app/contacts/{cid}/notes/{note['id']}/edit", {"body": "mine now"}),
        (f"/app/contacts/{cid}/notes/{note['id']}/delete", {}),
        (f"/app/contacts/{mine}/notes/{note['id']}/edit", {"body": "mine now"}),
        (f"/app/contacts/{mine}/notes/{note['id']}/delete", {}),
        (f"/app/contacts/{cid}/tags", {"tag": "mine"}),
        (f"/app/contacts/{cid}/tags/remove", {"tag": "a-secret-tag"}),
    ]
    for path, data in posts:
        r = await intruder.post(path, **data)
        assert r.status_code == 404, f"{path}: {r.status_code}"
    assert "a-secret-tag" not in (await intruder.get("/app/contacts")).text
    assert [n["body"] for n in await _api_notes(api, a, cid)] == ["A secret note"]
    assert (await _api_contact(api, a, cid))["tags"] == ["a-secret-tag"]


async def test_the_merge_confirmation_shows_what_each_side_brings(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient  # noqa: F811
) -> None:
    ws = await factory.workspace()
    keep, _ = await _contact(factory, ws)
    other, _ = await _contact(factory, ws)
    await factory.contact_tags(ws, keep, "vip")
    await factory.contact_tags(ws, other, "churn-risk")
    for body in ("First", "Second"):
        await factory.contact_note(ws, other, body)
    lead = await open_browser(browser_client, await factory.member(ws, Role.SUPERVISOR))
    page = await lead.get(f"/app/contacts/{keep}/merge?other={other}")
    assert page.status_code == 200
    keep_side, fold_side = page.text.split('aria-labelledby="fold-title"')
    assert "Notes: 0" in keep_side and "vip" in keep_side
    assert "Notes: 2" in fold_side and "churn-risk" in fold_side
    await lead.follow(f"/app/contacts/{keep}/merge", other_id=str(other))
    assert (await _api_contact(api, ws, keep))["tags"] == ["churn-risk", "vip"]
    assert [n["body"] for n in await _api_notes(api, ws, keep)] == ["Second", "First"]
