"""Canned responses: who manages which, who sees which, and placeholders filled as text."""

from __future__ import annotations

from typing import Any

import httpx

from frontdesk.accounts.models import Role
from frontdesk.canned.service import PlaceholderValues, fill_placeholders
from tests.apitools import assert_error, error_fields
from tests.factories import Factory, Member


async def _create(api: httpx.AsyncClient, who: Member, **body: Any) -> httpx.Response:
    return await api.post("/api/v1/canned-responses", headers=who.headers, json=body)


async def _shortcuts(api: httpx.AsyncClient, who: Member, query: str = "") -> list[str]:
    r = await api.get(f"/api/v1/canned-responses{query}", headers=who.headers)
    assert r.status_code == 200, r.text
    return [f"{c['scope'][0]}:{c['shortcut']}" for c in r.json()["items"]]


def test_placeholders_are_filled_once_as_plain_text() -> None:
    values = PlaceholderValues(contact_name="{{agent.name}} <b>Bob</b>", agent_name="Anna",
                               conversation_id=42)
    text = "Hi {{contact.name}}, {{ agent.name }} here about #{{conversation.id}}. {{x.y}} {{"
    assert fill_placeholders(text, values) == (
        "Hi {{agent.name}} <b>Bob</b>, Anna here about #42. {{x.y}} {{")
    # Unknown values leave the placeholder as written.
    assert fill_placeholders("Hi {{contact.name}}", PlaceholderValues()) == "Hi {{contact.name}}"


async def test_workspace_responses_are_the_supervisors_and_personal_ones_their_owners(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    anna, omar = (await factory.api_member(ws, Role.AGENT),
                  await factory.api_member(ws, Role.AGENT))
    boss = await factory.api_member(ws, Role.SUPERVISOR)

    assert_error(await _create(api, anna, shortcut="refund", content="x"), 403)
    r = await _create(api, boss, shortcut="/Refund", content="Your refund is on its way.")
    assert r.status_code == 201, r.text
    shared = r.json()
    assert shared["shortcut"] == "refund" and shared["scope"] == "workspace"
    r = await _create(api, anna, shortcut="refund", content="Anna's refund text",
                      scope="personal")
    assert r.status_code == 201, r.text  # a personal response may shadow the workspace's
    mine = r.json()
    assert_error(await _create(api, boss, shortcut="REFUND", content="again"), 409,
                 "shortcut_taken")

    assert await _shortcuts(api, anna) == ["p:refund", "w:refund"]
    assert await _shortcuts(api, omar) == ["w:refund"]
    assert await _shortcuts(api, omar, "?q=ref") == ["w:refund"]
    assert await _shortcuts(api, omar, "?q=nothing") == []

    url = f"/api/v1/canned-responses/{mine['id']}"
    for who in (omar, boss, ws.admin):  # someone else's personal response does not exist
        assert_error(await api.get(url, headers=who.headers), 404)
        assert_error(await api.delete(url, headers=who.headers), 404)
    shared_url = f"/api/v1/canned-responses/{shared['id']}"
    assert_error(await api.patch(shared_url, headers=anna.headers, json={"content": "y"}), 403)
    r = await api.patch(url, headers=anna.headers, json={"shortcut": "money-back"})
    assert r.status_code == 200 and r.json()["shortcut"] == "money-back"
    assert (await api.delete(shared_url, headers=boss.headers)).status_code == 204
    assert await _shortcuts(api, anna) == ["p:money-back"]


async def test_rendering_fills_the_conversation_contact_and_agent(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other = await factory.api_workspace(), await factory.api_workspace()
    ids = await factory.conversation(ws, identifier="olga-1", name="Olga <script>")
    theirs = (await factory.conversation(other))["conversation_id"]
    r = await _create(api, ws.admin, shortcut="hello",
                      content="Hello {{contact.name}}, I am {{agent.name}} (#{{conversation.id}})")
    cid = r.json()["id"]
    r = await api.get(f"/api/v1/canned-responses/{cid}/render"
                      f"?conversation_id={ids['conversation_id']}", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    agent_name = ws.admin.email.split("@")[0]  # a member made without a name gets this one
    assert r.json()["content"] == (
        f"Hello Olga <script>, I am {agent_name} (#{ids['conversation_id']})")
    r = await api.get(f"/api/v1/canned-responses/{cid}/render?conversation_id={theirs}",
                      headers=ws.admin.headers)
    assert_error(r, 404)


async def test_bad_shortcuts_and_blank_content_are_refused(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    assert error_fields(await _create(api, ws.admin, shortcut="two words", content="x")) == [
        "body.shortcut"]
    assert error_fields(await _create(api, ws.admin, shortcut="ok", content="  ")) == [
        "body.content"]
    assert error_fields(await _create(api, ws.admin, shortcut="ok", content="x",
                                      scope="everyone")) == ["body.scope"]
