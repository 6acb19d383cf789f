"""Intake through the API channel: idempotent, continuing the contact's open conversation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.factories import Factory, Workspace, unique


async def test_a_repeated_external_id_answers_200_with_the_same_ids_and_stores_nothing(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.workspace()
    inbox = await factory.inbox(ws)
    body = {"external_id": "ext-1", "contact": {"identifier": "c-1"}, "content": "Hi"}
    first = await api.post(f"/api/v1/inboxes/{inbox}/incoming", json=body, headers=ws.admin.headers)
    again = await api.post(f"/api/v1/inboxes/{inbox}/incoming", json=body, headers=ws.admin.headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    messages = await api.get(f"/api/v1/conversations/{first.json()['conversation_id']}/messages",
                             headers=ws.admin.headers)
    assert [m["content"] for m in messages.json()["items"]] == ["Hi"]


async def _push(api: httpx.AsyncClient, ws: Workspace, inbox: int, contact: dict[str, Any],
                content: str = "Hello", external_id: str | None = None) -> httpx.Response:
    return await api.post(f"/api/v1/inboxes/{inbox}/incoming", headers=ws.admin.headers,
                          json={"external_id": external_id or unique("ext"), "contact": contact,
                                "content": content})


async def _contact(api: httpx.AsyncClient, ws: Workspace, contact_id: int) -> dict[str, Any]:
    r = await api.get(f"/api/v1/contacts/{contact_id}", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_concurrent_deliveries_of_one_external_id_store_one_message(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    body = {"external_id": "dup-1", "contact": {"identifier": "c-dup"}, "content": "once"}
    responses = await asyncio.gather(*[
        api.post(f"/api/v1/inboxes/{inbox}/incoming", json=body, headers=ws.admin.headers)
        for _ in range(20)
    ])
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    assert len({r.text for r in responses}) == 1
    conversation_id = responses[0].json()["conversation_id"]
    messages = await api.get(f"/api/v1/conversations/{conversation_id}/messages",
                             headers=ws.admin.headers)
    assert [m["content"] for m in messages.json()["items"]] == ["once"]


async def test_the_same_external_id_in_another_inbox_is_another_message(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    first, second = await factory.inbox(ws), await factory.inbox(ws)
    contact = {"identifier": "c-1"}
    a = await _push(api, ws, first, contact, external_id="same")
    b = await _push(api, ws, second, contact, external_id="same")
    assert a.status_code == b.status_code == 201
    assert a.json()["message_id"] != b.json()["message_id"]
    assert a.json()["contact_id"] == b.json()["contact_id"]
    assert a.json()["conversation_id"] != b.json()["conversation_id"]


@pytest.mark.parametrize(("known", "sent"), [
    ({"identifier": "crm-42"}, {"identifier": "crm-42"}),
    ({"email": "oleg@example.com"}, {"email": "Oleg@EXAMPLE.com"}),
    ({"email": "oleg@example.com"}, {"email": "  oleg@example.com "}),
    ({"phone": "+79161234567"}, {"phone": "+7 916 123-45-67"}),
    ({"phone": "+7 (916) 123 45 67"}, {"phone": "+79161234567"}),
], ids=["identifier", "email-case", "email-spaces", "phone-formatted", "phone-plain"])
async def test_a_contact_is_recognised_by_any_identity_however_it_is_written(
    known: dict[str, str], sent: dict[str, str], api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    first = (await _push(api, ws, inbox, known)).json()
    again = await _push(api, ws, inbox, sent, content="me again")
    assert again.status_code == 201
    assert again.json()["contact_id"] == first["contact_id"]
    assert again.json()["conversation_id"] == first["conversation_id"]


async def test_phone_and_email_are_stored_normalised(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    ids = (await _push(api, ws, inbox, {"email": "Anna@Example.COM",
                                        "phone": "+49 151 1234 5678", "name": "Anna"})).json()
    contact = await _contact(api, ws, ids["contact_id"])
    assert (contact["name"], contact["email"], contact["phone"]) == (
        "Anna", "anna@example.com", "+4915112345678")
    assert {(i["kind"], i["value"]) for i in contact["identities"]} == {
        ("email", "anna@example.com"), ("phone", "+4915112345678")}


async def test_a_new_identity_is_attached_to_the_matched_contact(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    first = (await _push(api, ws, inbox, {"identifier": "crm-7"})).json()
    second = (await _push(api, ws, inbox, {"identifier": "crm-7",
                                           "email": "new@example.com"})).json()
    assert second["contact_id"] == first["contact_id"]
    by_email = (await _push(api, ws, inbox, {"email": "new@example.com"})).json()
    assert by_email["contact_id"] == first["contact_id"]
    contact = await _contact(api, ws, first["contact_id"])
    assert contact["email"] == "new@example.com"
    assert {(i["kind"], i["scope"], i["value"]) for i in contact["identities"]} == {
        ("external", "api", "crm-7"), ("email", "", "new@example.com")}


async def test_an_identity_owned_by_another_contact_is_not_stolen(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    anna = (await _push(api, ws, inbox, {"email": "anna@example.com"})).json()
    boris = (await _push(api, ws, inbox, {"identifier": "boris"})).json()
    assert anna["contact_id"] != boris["contact_id"]
    # Boris's system claims Anna's address: Boris is matched (most trusted identity
    # first), Anna keeps her address.
    claimed = (await _push(api, ws, inbox, {"identifier": "boris",
                                            "email": "anna@example.com"})).json()
    assert claimed["contact_id"] == boris["contact_id"]
    assert (await _contact(api, ws, boris["contact_id"]))["email"] is None
    assert (await _push(api, ws, inbox, {"email": "anna@example.com"})).json()[
        "contact_id"] == anna["contact_id"]
    values = [i["value"] for i in (await _contact(api, ws, anna["contact_id"]))["identities"]]
    assert values == ["anna@example.com"]


async def test_a_message_continues_the_open_conversation_of_that_inbox_only(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    web, app = await factory.inbox(ws), await factory.inbox(ws)
    first = (await _push(api, ws, web, {"identifier": "c"})).json()
    same_inbox = (await _push(api, ws, web, {"identifier": "c"})).json()
    other_inbox = (await _push(api, ws, app, {"identifier": "c"})).json()
    assert same_inbox["conversation_id"] == first["conversation_id"]
    assert other_inbox["conversation_id"] != first["conversation_id"]
    assert other_inbox["contact_id"] == first["contact_id"]


@pytest.mark.parametrize("status", ["resolved", "closed"])
async def test_a_finished_conversation_is_not_continued(
    status: str, api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    first = (await _push(api, ws, inbox, {"identifier": "c"})).json()
    await factory.set_status(ws, first["conversation_id"], status)
    again = (await _push(api, ws, inbox, {"identifier": "c"}, content="new problem")).json()
    assert again["conversation_id"] != first["conversation_id"]
    old = await api.get(f"/api/v1/conversations/{first['conversation_id']}",
                        headers=ws.admin.headers)
    assert old.json()["status"] == status
    new = await api.get(f"/api/v1/conversations/{again['conversation_id']}",
                        headers=ws.admin.headers)
    assert new.json()["status"] == "open"


@pytest.mark.parametrize("status", ["pending", "snoozed"])
async def test_a_waiting_conversation_is_reopened_by_the_customers_message(
    status: str, api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    first = (await _push(api, ws, inbox, {"identifier": "c"})).json()
    extra = {"snoozed_until": "2999-01-01T00:00:00Z"} if status == "snoozed" else {}
    await factory.set_status(ws, first["conversation_id"], status, **extra)
    again = (await _push(api, ws, inbox, {"identifier": "c"}, content="any news?")).json()
    assert again["conversation_id"] == first["conversation_id"]
    conversation = (await api.get(f"/api/v1/conversations/{first['conversation_id']}",
                                  headers=ws.admin.headers)).json()
    assert conversation["status"] == "open"
    assert conversation["snoozed_until"] is None
