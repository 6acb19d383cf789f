"""An e-mail inbox's support addresses: a primary one (`email`) and others, given at
creation, added and removed by PATCH; mail to any of them routes to the inbox."""

from __future__ import annotations

import httpx
import pytest

from frontdesk.accounts.models import Role
from frontdesk.channels.email.service import NoInboxForRecipients, receive_email
from frontdesk.runtime import Runtime
from tests.apitools import assert_error, error_fields
from tests.channels.email.mailmaker import make_mail
from tests.factories import Factory, Workspace, unique


def fresh_address(stem: str = "support") -> str:
    return f"{unique(stem)}@{unique('mail').lower()}.example.com"


async def new_inbox(api: httpx.AsyncClient, ws: Workspace, email: str,
                    addresses: list[str]) -> httpx.Response:
    return await api.post("/api/v1/inboxes", headers=ws.admin.headers,
                          json={"name": unique("mailbox"), "channel": "email", "email": email,
                                "addresses": addresses})


async def routed_to(runtime: Runtime, address: str) -> int:
    """The inbox a mail to `address` is stored in."""
    raw = make_mail(sender=f"{unique('c')}@customer.example", to=address, body="Hello")
    got = await receive_email(runtime, raw, inbox_id=None, envelope_recipients=[address],
                              source="test")
    assert got.status == "stored", got
    return got.inbox_id


async def test_an_email_inbox_is_created_with_several_addresses_and_receives_at_each(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    primary, sales, billing = fresh_address(), fresh_address("sales"), fresh_address("billing")
    r = await new_inbox(api, ws, primary, [sales.upper(), billing, primary, sales])
    assert r.status_code == 201, r.text
    inbox = r.json()
    # Lower-cased, each once, the primary first (it is `settings.email`).
    assert inbox["addresses"] == [primary, sales, billing]
    assert inbox["settings"]["email"] == primary
    got = (await api.get(f"/api/v1/inboxes/{inbox['id']}", headers=ws.admin.headers)).json()
    assert got["addresses"] == [primary, sales, billing]
    listed = (await api.get("/api/v1/inboxes", headers=ws.admin.headers)).json()
    assert [i["addresses"] for i in listed if i["id"] == inbox["id"]] == [
        [primary, sales, billing]]
    for address in (primary, sales, billing):
        assert await routed_to(runtime, address) == inbox["id"]
    # An API inbox has no addresses.
    api_inbox = await factory.inbox(ws)
    got = (await api.get(f"/api/v1/inboxes/{api_inbox}", headers=ws.admin.headers)).json()
    assert got["addresses"] == []


async def test_addresses_are_added_and_removed_through_the_inbox_update(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws, other_ws = await factory.api_workspace(), await factory.api_workspace()
    inbox_id, primary = await factory.email_inbox(ws)
    old, new = fresh_address("old"), fresh_address("new")
    url = f"/api/v1/inboxes/{inbox_id}"
    r = await api.patch(url, headers=ws.admin.headers, json={"addresses": [primary, old]})
    assert r.status_code == 200, r.text
    assert r.json()["addresses"] == [primary, old]
    assert await routed_to(runtime, old) == inbox_id
    # The list is the whole list: `old` is released, `new` claimed; the primary stays.
    r = await api.patch(url, headers=ws.admin.headers, json={"addresses": [new, primary]})
    assert r.status_code == 200, r.text
    assert r.json()["addresses"] == [primary, new]
    assert r.json()["settings"]["email"] == primary
    assert await routed_to(runtime, new) == inbox_id
    with pytest.raises(NoInboxForRecipients):
        await routed_to(runtime, old)
    # A released address is free: another workspace's inbox may take it.
    r = await new_inbox(api, other_ws, old, [])
    assert r.status_code == 201, r.text
    assert await routed_to(runtime, old) == r.json()["id"]
    # Changing the primary keeps the earlier one receiving, as before.
    promoted = await api.patch(url, headers=ws.admin.headers, json={"email": new})
    assert promoted.json()["addresses"] == [new, primary]


async def test_an_address_another_inbox_owns_answers_409(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other_ws = await factory.api_workspace(), await factory.api_workspace()
    inbox_id, primary = await factory.email_inbox(ws)
    _, theirs = await factory.email_inbox(other_ws)
    _, sibling = await factory.email_inbox(ws)
    before = len((await api.get("/api/v1/inboxes", headers=ws.admin.headers)).json())
    for taken in (theirs, sibling):
        r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                            json={"addresses": [primary, taken]})
        assert_error(r, 409, "email_address_taken")
        assert_error(await new_inbox(api, ws, fresh_address(), [taken]), 409,
                     "email_address_taken")
    # Nothing of the refused requests stayed: no inbox, no address.
    after = (await api.get("/api/v1/inboxes", headers=ws.admin.headers)).json()
    assert len(after) == before
    got = (await api.get(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers)).json()
    assert got["addresses"] == [primary]


async def test_removing_the_primary_address_is_refused_until_another_is_primary(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    secondary = fresh_address("secondary")
    r = await new_inbox(api, ws, fresh_address(), [secondary])
    inbox_id, primary = r.json()["id"], r.json()["settings"]["email"]
    url = f"/api/v1/inboxes/{inbox_id}"
    r = await api.patch(url, headers=ws.admin.headers, json={"addresses": [secondary]})
    assert_error(r, 422, "primary_address_required")
    assert primary in r.json()["error"]["message"]
    assert error_fields(r) == ["body.addresses"]
    # Naming a new primary that the list leaves out is the same mistake.
    r = await api.patch(url, headers=ws.admin.headers,
                        json={"email": secondary, "addresses": [primary]})
    assert_error(r, 422, "primary_address_required")
    # Promoting the other address and dropping the old primary in one request works.
    r = await api.patch(url, headers=ws.admin.headers,
                        json={"email": secondary, "addresses": [secondary]})
    assert r.status_code == 200, r.text
    assert (r.json()["settings"]["email"], r.json()["addresses"]) == (secondary, [secondary])
    with pytest.raises(NoInboxForRecipients):
        await routed_to(runtime, primary)


async def test_addresses_are_checked_one_by_one(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox_id, primary = await factory.email_inbox(ws)
    url = f"/api/v1/inboxes/{inbox_id}"
    r = await api.patch(url, headers=ws.admin.headers, json={"addresses": [primary, "nobody"]})
    assert_error(r, 422, "invalid_email")
    assert error_fields(r) == ["body.addresses.1"]
    r = await api.patch(url, headers=ws.admin.headers,
                        json={"addresses": [primary, "help+x@example.com"]})
    assert_error(r, 422, "invalid_email")
    r = await api.patch(url, headers=ws.admin.headers,
                        json={"addresses": ["a@b.example\r\nBcc: x@y.example", primary]})
    assert error_fields(r) == ["body.addresses.0"]
    assert_error(await api.patch(url, headers=ws.admin.headers, json={"addresses": []}), 422)
    r = await api.post("/api/v1/inboxes", headers=ws.admin.headers,
                       json={"name": "Web", "channel": "api", "addresses": [fresh_address()]})
    assert_error(r, 422)
    api_inbox = await factory.inbox(ws)
    r = await api.patch(f"/api/v1/inboxes/{api_inbox}", headers=ws.admin.headers,
                        json={"addresses": [fresh_address()]})
    assert_error(r, 422, "not_an_email_inbox")


async def test_only_the_workspaces_admins_change_an_inboxs_addresses(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other_ws = await factory.api_workspace(), await factory.api_workspace()
    supervisor = await factory.api_member(ws, Role.SUPERVISOR)
    inbox_id, primary = await factory.email_inbox(ws)
    body = {"addresses": [primary, fresh_address()]}
    assert_error(await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=supervisor.headers,
                                 json=body), 403)
    assert_error(await api.patch(f"/api/v1/inboxes/{inbox_id}",
                                 headers=other_ws.admin.headers, json=body), 404)
    assert_error(await api.get(f"/api/v1/inboxes/{inbox_id}", headers=other_ws.admin.headers),
                 404)
    # The other workspace's list shows none of this workspace's addresses.
    theirs = (await api.get("/api/v1/inboxes", headers=other_ws.admin.headers)).json()
    assert all(primary not in i["addresses"] for i in theirs)
    got = (await api.get(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers)).json()
    assert got["addresses"] == [primary]
