"""Contacts: found by name, address or number; corrected by agents; merged by supervisors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from frontdesk.accounts.models import Role
from tests.apitools import assert_error, error_fields
from tests.factories import Factory, Workspace


async def _contact_with(
    factory: Factory, ws: Workspace, inbox: int, content: str = "Hello", **identity: str
) -> dict[str, Any]:
    return await factory.incoming(ws, inbox, content=content, **identity)


async def _get(api: httpx.AsyncClient, ws: Workspace, contact_id: int) -> httpx.Response:
    return await api.get(f"/api/v1/contacts/{contact_id}", headers=ws.admin.headers)


async def _search(api: httpx.AsyncClient, ws: Workspace, q: str) -> list[int]:
    r = await api.get("/api/v1/contacts", params={"q": q}, headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["items"]]


# --- search and read ----------------------------------------------------------------------


async def test_contacts_are_found_by_name_email_or_phone(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    oleg = (await _contact_with(factory, ws, inbox, name="Олег Петров",
                                email="oleg@example.com", phone="+79161234567"))["contact_id"]
    anna = (await _contact_with(factory, ws, inbox, name="Anna Schmidt",
                                email="anna@example.org"))["contact_id"]
    assert await _search(api, ws, "Петров") == [oleg]
    assert await _search(api, ws, "ОЛЕГ петров") == [oleg]
    assert await _search(api, ws, "schmidt") == [anna]
    assert await _search(api, ws, "OLEG@example.COM") == [oleg]
    assert await _search(api, ws, "example.org") == [anna]
    assert await _search(api, ws, "+7 916 123-45-67") == [oleg]
    assert await _search(api, ws, "9161234567") == [oleg]
    assert await _search(api, ws, "100%_") == []
    assert sorted(await _search(api, ws, "")) == sorted([oleg, anna])


async def test_the_contact_list_pages_newest_first_without_gaps(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    made = [(await factory.incoming(ws, inbox))["contact_id"] for _ in range(5)]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/v1/contacts", params=params,
                              headers=ws.admin.headers)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made, reverse=True)
    r = await api.get("/api/v1/contacts", params={"cursor": "garbage!"}, headers=ws.admin.headers)
    assert_error(r, 422, "invalid_cursor")


async def test_a_contact_is_read_with_all_its_identities(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    ids = await _contact_with(factory, ws, inbox, identifier="crm-1", email="a@example.com")
    contact = (await _get(api, ws, ids["contact_id"])).json()
    assert contact["email"] == "a@example.com"
    assert {(i["kind"], i["value"]) for i in contact["identities"]} == {
        ("external", "crm-1"), ("email", "a@example.com")}
    assert_error(await _get(api, ws, 987654321), 404, "not_found")


# --- update -------------------------------------------------------------------------------


async def test_an_update_normalises_email_and_phone_and_makes_them_identities(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    contact_id = (await factory.incoming(ws, inbox))["contact_id"]
    agent = await factory.api_member(ws, Role.AGENT)
    r = await api.patch(f"/api/v1/contacts/{contact_id}", headers=agent.headers,
                        json={"name": "Jane", "email": " Jane@Example.COM ",
                              "phone": "+44 20 7946 0958",
                              "custom_attributes": {"plan": "pro", "seats": 3}})
    assert r.status_code == 200, r.text
    contact = r.json()
    assert (contact["name"], contact["email"], contact["phone"]) == (
        "Jane", "jane@example.com", "+442079460958")
    assert contact["custom_attributes"] == {"plan": "pro", "seats": 3}
    assert {("email", "jane@example.com"), ("phone", "+442079460958")} <= {
        (i["kind"], i["value"]) for i in contact["identities"]}
    # Now intake recognises her by either.
    again = await factory.incoming(ws, inbox, phone="+442079460958")
    assert again["contact_id"] == contact_id
    # custom attributes merge; null removes one
    r = await api.patch(f"/api/v1/contacts/{contact_id}", headers=agent.headers,
                        json={"custom_attributes": {"seats": None, "tier": "gold"}})
    assert r.json()["custom_attributes"] == {"plan": "pro", "tier": "gold"}


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "nope"}, "body.email"),
    ({"phone": "123"}, "body.phone"),
    ({"name": None}, "body.name"),
    ({"name": "x" * 201}, "body.name"),
    ({"company_id": 0}, "body.company_id"),
    ({"custom_attributes": {"a": "\u0000"}}, "body.custom_attributes"),
])
async def test_an_invalid_update_is_refused_naming_the_field(
    body: dict[str, Any], field: str, api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    contact_id = (await factory.conversation(ws))["contact_id"]
    before = (await _get(api, ws, contact_id)).json()
    r = await api.patch(f"/api/v1/contacts/{contact_id}", headers=ws.admin.headers, json=body)
    assert error_fields(r) == [field]
    assert (await _get(api, ws, contact_id)).json() == before


async def test_an_address_of_another_contact_is_refused_with_identity_taken(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    anna = (await _contact_with(factory, ws, inbox, email="anna@example.com"))["contact_id"]
    boris = (await _contact_with(factory, ws, inbox, identifier="boris"))["contact_id"]
    before = (await _get(api, ws, boris)).json()
    r = await api.patch(f"/api/v1/contacts/{boris}", headers=ws.admin.headers,
                        json={"name": "Boris", "email": "ANNA@example.com"})
    error = assert_error(r, 409, "identity_taken")
    assert error["details"] == {"contact_id": anna}
    assert (await _get(api, ws, boris)).json() == before


async def test_a_company_of_another_workspace_cannot_be_set(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other = await factory.api_workspace(), await factory.api_workspace()
    contact_id = (await factory.conversation(ws))["contact_id"]
    theirs, ours = await factory.company(other), await factory.company(ws)
    r = await api.patch(f"/api/v1/contacts/{contact_id}", headers=ws.admin.headers,
                        json={"company_id": theirs})
    assert_error(r, 404)
    assert (await _get(api, ws, contact_id)).json()["company_id"] is None
    r = await api.patch(f"/api/v1/contacts/{contact_id}", headers=ws.admin.headers,
                        json={"company_id": ours})
    assert r.json()["company_id"] == ours
    r = await api.get(f"/api/v1/companies/{ours}", headers=ws.admin.headers)
    assert r.status_code == 200


# --- merge --------------------------------------------------------------------------------


async def test_a_merge_moves_conversations_messages_and_identities_to_the_survivor(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    web, mail = await factory.inbox(ws), await factory.inbox(ws)
    keep = await _contact_with(factory, ws, web, content="from the web", identifier="web-7")
    gone = await _contact_with(factory, ws, mail, content="by mail", email="jane@example.com",
                               name="Jane")
    supervisor = await factory.api_member(ws, Role.SUPERVISOR)
    r = await api.post(f"/api/v1/contacts/{keep['contact_id']}/merge", headers=supervisor.headers,
                       json={"merge_id": gone["contact_id"]})
    assert r.status_code == 200, r.text
    survivor = r.json()
    assert survivor["id"] == keep["contact_id"]
    assert survivor["name"] == "Jane" and survivor["email"] == "jane@example.com"
    assert {i["value"] for i in survivor["identities"]} == {"web-7", "jane@example.com"}

    moved = (await api.get(f"/api/v1/conversations/{gone['conversation_id']}",
                           headers=ws.admin.headers)).json()
    assert moved["contact_id"] == keep["contact_id"]
    (message,) = (await api.get(f"/api/v1/conversations/{gone['conversation_id']}/messages",
                                headers=ws.admin.headers)).json()["items"]
    assert message["sender_contact_id"] == keep["contact_id"]
    assert_error(await _get(api, ws, gone["contact_id"]), 404)
    # the merged contact's address now brings the customer to the survivor
    again = await factory.incoming(ws, mail, email="jane@example.com")
    assert again["contact_id"] == keep["contact_id"]
    assert again["conversation_id"] == gone["conversation_id"]


async def test_a_contact_cannot_be_merged_into_itself(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    contact_id = (await factory.conversation(ws))["contact_id"]
    r = await api.post(f"/api/v1/contacts/{contact_id}/merge", headers=ws.admin.headers,
                       json={"merge_id": contact_id})
    assert_error(r, 422, "same_contact")
    assert (await _get(api, ws, contact_id)).status_code == 200


async def test_an_agent_cannot_merge_and_a_contact_of_another_workspace_is_unknown(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other = await factory.api_workspace(), await factory.api_workspace()
    inbox = await factory.inbox(ws)
    first = (await factory.incoming(ws, inbox))["contact_id"]
    second = (await factory.incoming(ws, inbox))["contact_id"]
    theirs = (await factory.conversation(other))["contact_id"]
    agent = await factory.api_member(ws, Role.AGENT)
    r = await api.post(f"/api/v1/contacts/{first}/merge", headers=agent.headers,
                       json={"merge_id": second})
    assert_error(r, 403, "forbidden")
    r = await api.post(f"/api/v1/contacts/{first}/merge", headers=ws.admin.headers,
                       json={"merge_id": theirs})
    assert_error(r, 404)
    assert (await _get(api, ws, second)).status_code == 200
    assert (await api.get(f"/api/v1/contacts/{theirs}", headers=other.admin.headers)
            ).status_code == 200


async def test_an_identity_is_removed_and_the_preferred_address_with_it(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    ids = await factory.conversation(ws, identifier="cust-forget", email="old@example.com")
    contact_id = ids["contact_id"]
    detail = (await api.get(f"/api/v1/contacts/{contact_id}", headers=ws.admin.headers)).json()
    email = next(i for i in detail["identities"] if i["kind"] == "email")
    r = await api.delete(f"/api/v1/contacts/{contact_id}/identities/{email['id']}",
                         headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["email"] is None
    assert [i["kind"] for i in r.json()["identities"]] == ["external"]
    external = next(i for i in detail["identities"] if i["kind"] == "external")
    other = await factory.conversation(ws)  # another contact's path with this one's identity
    wrong = await api.delete(f"/api/v1/contacts/{other['contact_id']}/identities/"
                             f"{external['id']}", headers=ws.admin.headers)
    assert_error(wrong, 404)
