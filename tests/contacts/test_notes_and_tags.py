"""Contacts' own notes and tags: written by every member, changed by their author (or a
supervisor), moved and united by a merge, announced as events, walled off by workspace."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.contacts import tags as contact_tags
from frontdesk.core.errors import Forbidden, InvalidInput, NotFound
from frontdesk.core.events import OutboxEvent
from frontdesk.runtime import Runtime
from tests.apitools import HOOK_URL, assert_error, error_fields
from tests.factories import Factory, Workspace


async def _contact(factory: Factory, ws: Workspace) -> int:
    return int((await factory.conversation(ws))["contact_id"])


async def _notes(api: httpx.AsyncClient, ws: Workspace, contact_id: int,
                 **params: Any) -> dict[str, Any]:
    r = await api.get(f"/api/v1/contacts/{contact_id}/notes", headers=ws.admin.headers,
                      params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _events(runtime: Runtime, ws: Workspace) -> list[tuple[str, dict[str, Any]]]:
    async with runtime.read_sessions() as session:
        rows = (await session.execute(
            select(OutboxEvent.type, OutboxEvent.payload).where(OutboxEvent.workspace_id == ws.id)
            .order_by(OutboxEvent.id))).tuples().all()
    return [(t, p) for t, p in rows]


# --- notes ----------------------------------------------------------------------------------


async def test_notes_are_listed_newest_first_in_pages_and_kept_as_plain_text(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    contact = await _contact(factory, ws)
    texts = ["Prefers calls after 6 pm", "Renewal due in March",
             "<b>VIP</b> <script>alert(1)</script> & friends"]
    made = [await factory.contact_note(ws, contact, body) for body in texts]
    assert made[0]["author_user_id"] == ws.admin.user_id
    assert made[0]["updated_at"] == made[0]["created_at"]  # not edited yet
    assert made[0]["contact_id"] == contact
    page = await _notes(api, ws, contact, limit=2)
    assert [n["body"] for n in page["items"]] == texts[::-1][:2]
    rest = await _notes(api, ws, contact, limit=2, cursor=page["next_cursor"])
    assert [n["body"] for n in rest["items"]] == [texts[0]]
    assert rest["next_cursor"] is None
    # Stored exactly as written (the web escapes it on output), surrounding blanks trimmed.
    r = await api.post(f"/api/v1/contacts/{contact}/notes", headers=ws.admin.headers,
                       json={"body": "  Хочет счёт на юрлицо  \n"})
    assert r.status_code == 201 and r.json()["body"] == "Хочет счёт на юрлицо"


async def test_a_note_needs_text_and_only_a_body(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    contact = await _contact(factory, ws)
    url = f"/api/v1/contacts/{contact}/notes"
    for body in ({"body": ""}, {"body": "   \n "}, {"body": "x" * 10_001}, {}):
        r = await api.post(url, headers=ws.admin.headers, json=body)
        assert "body.body" in error_fields(r), body
    r = await api.post(url, headers=ws.admin.headers,
                       json={"body": "fine", "author_user_id": 1})
    assert_error(r, 422)
    assert (await _notes(api, ws, contact))["items"] == []


async def test_the_author_edits_and_deletes_a_note_another_agent_cannot_a_supervisor_can(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    contact = await _contact(factory, ws)
    anna = await factory.api_member(ws, Role.AGENT)
    boris = await factory.api_member(ws, Role.AGENT)
    lead = await factory.api_member(ws, Role.SUPERVISOR)
    note = await factory.contact_note(ws, contact, "Asked for a discount", author=anna)
    url = f"/api/v1/contacts/{contact}/notes/{note['id']}"

    r = await api.patch(url, headers=anna.headers, json={"body": "Asked for a 10% discount"})
    assert r.status_code == 200, r.text
    assert r.json()["body"] == "Asked for a 10% discount"
    assert r.json()["updated_at"] > note["updated_at"]
    assert_error(await api.patch(url, headers=boris.headers, json={"body": "mine now"}),
                 403, "not_yours")
    assert_error(await api.delete(url, headers=boris.headers), 403, "not_yours")
    r = await api.patch(url, headers=lead.headers, json={"body": "Discount agreed: 10%"})
    assert r.status_code == 200 and r.json()["author_user_id"] == anna.user_id
    assert [n["body"] for n in (await _notes(api, ws, contact))["items"]] == [
        "Discount agreed: 10%"]
    r = await api.delete(url, headers=anna.headers)
    assert r.status_code == 204, r.text
    assert_error(await api.delete(url, headers=anna.headers), 404, "not_found")
    assert (await _notes(api, ws, contact))["items"] == []

    kinds = [(t, p["note"]["id"]) for t, p in await _events(runtime, ws)
             if t.startswith("contact_note.")]
    assert kinds == [("contact_note.created", note["id"]), ("contact_note.updated", note["id"]),
                     ("contact_note.updated", note["id"]), ("contact_note.deleted", note["id"])]


async def test_notes_of_another_workspace_or_contact_are_not_found(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other = await factory.api_workspace(), await factory.api_workspace()
    contact, theirs = await _contact(factory, ws), await _contact(factory, other)
    second = await _contact(factory, ws)
    note = await factory.contact_note(other, theirs, "secret of the other workspace")
    mine = await factory.contact_note(ws, contact)
    h = ws.admin.headers
    assert_error(await api.get(f"/api/v1/contacts/{theirs}/notes", headers=h), 404)
    assert_error(await api.post(f"/api/v1/contacts/{theirs}/notes", headers=h,
                                json={"body": "x"}), 404)
    for path in (f"/api/v1/contacts/{theirs}/notes/{note['id']}",
                 f"/api/v1/contacts/{contact}/notes/{note['id']}",
                 f"/api/v1/contacts/{second}/notes/{mine['id']}"):  # the wrong contact
        assert_error(await api.patch(path, headers=h, json={"body": "x"}), 404, "not_found")
        assert_error(await api.delete(path, headers=h), 404, "not_found")
    assert [n["body"] for n in (await _notes(api, other, theirs))["items"]] == [
        "secret of the other workspace"]


# --- tags -----------------------------------------------------------------------------------


async def test_contact_tags_are_added_removed_and_separate_from_conversation_tags(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    ids = await factory.conversation(ws)
    contact = int(ids["contact_id"])
    await factory.tag(ws, ids["conversation_id"], "billing")
    url = f"/api/v1/contacts/{contact}/tags"
    agent = await factory.api_member(ws, Role.AGENT)

    r = await api.post(url, headers=agent.headers, json={"tags": [" VIP ", "churn-risk", "vip"]})
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["churn-risk", "vip"]
    r = await api.post(url, headers=agent.headers, json={"tags": ["vip"]})  # already there
    assert r.json()["tags"] == ["churn-risk", "vip"]
    r = await api.request("DELETE", url, headers=agent.headers,
                          json={"tags": ["CHURN-RISK", "never-had"]})
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["vip"]
    detail = (await api.get(f"/api/v1/contacts/{contact}", headers=agent.headers)).json()
    assert detail["tags"] == ["vip"]
    conversation = (await api.get(f"/api/v1/conversations/{ids['conversation_id']}",
                                  headers=agent.headers)).json()
    assert conversation["tags"] == ["billing"]  # the conversation's own, untouched

    for bad in ({"tags": []}, {"tags": ["  "]}, {"tags": ["x" * 101]}):
        assert_error(await api.post(url, headers=agent.headers, json=bad), 422)

    changes = [p["changes"]["tags"] for t, p in await _events(runtime, ws)
               if t == "contact.updated" and "tags" in p["changes"]]
    # One event per real change: the repeated "vip" changed nothing.
    assert changes == [[[], ["churn-risk", "vip"]], [["churn-risk", "vip"], ["vip"]]]


async def test_the_contact_list_is_filtered_by_tag(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other = await factory.api_workspace(), await factory.api_workspace()
    vip, churn, plain = [await _contact(factory, ws) for _ in range(3)]
    theirs = await _contact(factory, other)
    await factory.contact_tags(ws, vip, "vip")
    await factory.contact_tags(ws, churn, "vip", "churn-risk")
    await factory.contact_tags(other, theirs, "vip")

    async def listed(**params: Any) -> list[int]:
        r = await api.get("/api/v1/contacts", headers=ws.admin.headers, params=params)
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    assert await listed(tag="vip") == [churn, vip]
    assert await listed(tag="VIP ") == [churn, vip]
    assert await listed(tag="churn-risk") == [churn]
    assert await listed(tag="nobody-has-it") == []
    assert plain in await listed()
    page = await listed(tag="vip", limit=1)
    assert page == [churn]


async def test_tags_of_another_workspace_contact_are_not_found(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other = await factory.api_workspace(), await factory.api_workspace()
    theirs = await _contact(factory, other)
    await factory.contact_tags(other, theirs, "vip")
    url = f"/api/v1/contacts/{theirs}/tags"
    assert_error(await api.post(url, headers=ws.admin.headers, json={"tags": ["x"]}), 404)
    assert_error(await api.request("DELETE", url, headers=ws.admin.headers,
                                   json={"tags": ["vip"]}), 404)
    detail = (await api.get(f"/api/v1/contacts/{theirs}", headers=other.admin.headers)).json()
    assert detail["tags"] == ["vip"]


# --- merging ----------------------------------------------------------------------------------


async def test_merging_contacts_moves_notes_and_unites_tags(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    survivor, merged = await _contact(factory, ws), await _contact(factory, ws)
    kept = await factory.contact_note(ws, survivor, "Survivor's note")
    moved = await factory.contact_note(ws, merged, "Merged contact's note")
    await factory.contact_tags(ws, survivor, "vip", "de")
    await factory.contact_tags(ws, merged, "vip", "churn-risk")
    lead = await factory.api_member(ws, Role.SUPERVISOR)

    r = await api.post(f"/api/v1/contacts/{survivor}/merge", headers=lead.headers,
                       json={"merge_id": merged})
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["churn-risk", "de", "vip"]
    notes = (await _notes(api, ws, survivor))["items"]
    assert [(n["id"], n["contact_id"]) for n in notes] == [(moved["id"], survivor),
                                                          (kept["id"], survivor)]
    r = await api.get("/api/v1/contacts", headers=ws.admin.headers, params={"tag": "vip"})
    assert [c["id"] for c in r.json()["items"]] == [survivor]
    r = await api.patch(f"/api/v1/contacts/{survivor}/notes/{moved['id']}",
                        headers=ws.admin.headers, json={"body": "still editable"})
    assert r.status_code == 200, r.text


async def test_webhooks_subscribe_to_note_events_and_get_them(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    contact = await _contact(factory, ws)
    r = await api.post("/api/v1/webhooks", headers=ws.admin.headers,
                       json={"url": HOOK_URL, "events": ["contact_note.created"]})
    assert r.status_code == 201, r.text
    webhook_id = r.json()["id"]
    await factory.contact_tags(ws, contact, "vip")  # contact.updated: not subscribed
    note = await factory.contact_note(ws, contact)
    url = f"/api/v1/webhooks/{webhook_id}/deliveries"
    for _ in range(200):
        items = (await api.get(url, headers=ws.admin.headers)).json()["items"]
        if items:
            break
        await asyncio.sleep(0.05)
    # The tags' contact.updated came first and was not subscribed to: only the note's event.
    assert [d["event_type"] for d in items] == ["contact_note.created"]
    async with runtime.read_sessions() as session:
        payload = (await session.execute(select(OutboxEvent.payload).where(
            OutboxEvent.id == items[0]["event_id"]))).scalar_one()
    assert payload["note"] == {**note, "contact_id": contact}


# --- the workspace's contact tags (the admin's tag screen) ---------------------------------


def _contact_tag_changes(events: list[tuple[str, dict[str, Any]]]) -> dict[int, Any]:
    """contact id -> changes.tags of its contact.updated event (one each)."""
    found: dict[int, Any] = {}
    for kind, payload in events:
        assert kind == "contact.updated", kind
        assert payload["contact"]["id"] not in found, "one event per contact"
        found[payload["contact"]["id"]] = payload["changes"]["tags"]
    return found


async def test_an_admin_renames_and_deletes_a_contact_tag_on_every_contact_with_events(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.workspace()
    anna, omar, lena = (await _contact(factory, ws), await _contact(factory, ws),
                        await _contact(factory, ws))
    await factory.contact_tags(ws, anna, "vip", "churn-risk")
    await factory.contact_tags(ws, omar, "vip", "v.i.p")
    await factory.contact_tags(ws, lena, "partner")
    admin = Principal(ws.admin.user_id, ws.id, Role.ADMIN)

    async with runtime.sessions() as session:
        usage = await contact_tags.list_contact_tag_usage(session, admin)
    assert [(u.name, u.contacts) for u in usage] == [
        ("churn-risk", 1), ("partner", 1), ("v.i.p", 1), ("vip", 2)]

    seen = len(await _events(runtime, ws))
    async with runtime.sessions() as session:
        renamed = await contact_tags.rename_contact_tag(session, admin, "v.i.p", " VIP ")
        await session.commit()
    assert (renamed.name, renamed.contacts) == ("vip", 2)  # merged into the tag in use
    async with runtime.sessions() as session:
        renamed = await contact_tags.rename_contact_tag(session, admin, "vip", "key-account")
        await session.commit()
    assert (renamed.name, renamed.contacts) == ("key-account", 2)
    events = await _events(runtime, ws)
    assert _contact_tag_changes(events[seen:seen + 1]) == {omar: [["v.i.p", "vip"], ["vip"]]}
    assert _contact_tag_changes(events[seen + 1:]) == {
        anna: [["churn-risk", "vip"], ["churn-risk", "key-account"]],
        omar: [["vip"], ["key-account"]],
    }  # and nothing for lena, who never carried it

    seen = len(events)
    async with runtime.sessions() as session:
        assert await contact_tags.delete_contact_tag(session, admin, "key-account") == 2
        await session.commit()
    assert _contact_tag_changes((await _events(runtime, ws))[seen:]) == {
        anna: [["churn-risk", "key-account"], ["churn-risk"]],
        omar: [["key-account"], []],
    }
    for contact_id, tags in ((anna, ["churn-risk"]), (omar, []), (lena, ["partner"])):
        r = await api.get(f"/api/v1/contacts/{contact_id}", headers=ws.admin.headers)
        assert r.json()["tags"] == tags


async def test_contact_tag_renames_are_for_admins_and_other_workspaces_tags_are_not_found(
    factory: Factory, runtime: Runtime
) -> None:
    ws, other = await factory.workspace(), await factory.workspace()
    await factory.contact_tags(ws, await _contact(factory, ws), "vip")
    await factory.contact_tags(other, await _contact(factory, other), "theirs")
    admin = Principal(ws.admin.user_id, ws.id, Role.ADMIN)
    supervisor = Principal(ws.admin.user_id, ws.id, Role.SUPERVISOR)
    seen = len(await _events(runtime, ws))
    async with runtime.sessions() as session:
        with pytest.raises(Forbidden):
            await contact_tags.rename_contact_tag(session, supervisor, "vip", "gold")
        with pytest.raises(Forbidden):
            await contact_tags.delete_contact_tag(session, supervisor, "vip")
        for name in ("theirs", "nobody-has-it"):
            with pytest.raises(NotFound):
                await contact_tags.rename_contact_tag(session, admin, name, "mine")
            with pytest.raises(NotFound):
                await contact_tags.delete_contact_tag(session, admin, name)
        with pytest.raises(InvalidInput):
            await contact_tags.rename_contact_tag(session, admin, "vip", "  ")
        assert [u.name for u in await contact_tags.list_contact_tag_usage(session, admin)] == [
            "vip"]
        await session.commit()
    assert len(await _events(runtime, ws)) == seen  # nothing was renamed, nothing told


async def test_a_contact_tag_change_takes_as_many_queries_for_30_contacts_as_for_3(
    factory: Factory, runtime: Runtime
) -> None:
    statements: list[str] = []
    ours: list[Any] = []

    def count(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if conn in ours:  # not the dispatcher's, which shares the engine on PostgreSQL
            statements.append(statement)

    async def queries_of(change: str, n: int) -> int:
        ws = await factory.workspace()
        for _ in range(n):
            await factory.contact_tags(ws, await _contact(factory, ws), "vip")
        admin = Principal(ws.admin.user_id, ws.id, Role.ADMIN)
        engine = runtime.write_engine.sync_engine
        async with runtime.sessions() as session:
            await session.execute(select(1))
            ours[:] = [(await session.connection()).sync_connection]
            statements.clear()
            event.listen(engine, "before_cursor_execute", count)
            try:
                if change == "rename":
                    await contact_tags.rename_contact_tag(session, admin, "vip", "gold")
                else:
                    await contact_tags.delete_contact_tag(session, admin, "vip")
                await session.flush()
            finally:
                event.remove(engine, "before_cursor_execute", count)
            recorded = (await session.execute(
                select(func.count()).select_from(OutboxEvent)
                .where(OutboxEvent.workspace_id == ws.id,
                       OutboxEvent.type == "contact.updated"))).scalar_one()
            assert recorded == 2 * n  # n taggings, then n of this change, in its transaction
            await session.rollback()
        return len(statements)

    for change in ("rename", "delete"):
        assert await queries_of(change, 30) == await queries_of(change, 3), change
