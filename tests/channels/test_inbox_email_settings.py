"""PATCH /inboxes/{id}: an e-mail inbox's settings changed by an admin, and what mail does
with them afterwards (the new address receives, the old one still does, the new
acknowledgement is sent)."""

from __future__ import annotations

import httpx

from frontdesk.accounts.models import Role
from frontdesk.channels.email.service import receive_email
from frontdesk.runtime import Runtime
from tests.apitools import assert_error, error_fields
from tests.channels.email.mailmaker import make_mail
from tests.factories import Factory, unique


async def test_an_admin_changes_an_email_inboxs_settings_and_mail_follows(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    inbox_id, old_address = await factory.email_inbox(ws, from_name="Old name")
    new_address = f"{unique('help')}@example.org"
    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                        json={"email": new_address.upper(), "from_name": "ACME Help",
                              "signature": "ACME\nhttps://acme.example",
                              "auto_acknowledgement": "We got your mail."})
    assert r.status_code == 200, r.text
    settings = r.json()["settings"]
    assert settings == {"email": new_address, "from_name": "ACME Help",
                        "signature": "ACME\nhttps://acme.example",
                        "auto_acknowledgement": "We got your mail."}
    # Only what is sent changes; an empty text removes the acknowledgement.
    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                        json={"auto_acknowledgement": "", "name": "Help desk"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Help desk"
    assert r.json()["settings"]["from_name"] == "ACME Help"
    assert r.json()["settings"]["auto_acknowledgement"] == ""
    # Both addresses receive: the old one still gets answers to earlier threads.
    for address in (new_address, old_address):
        raw = make_mail(sender=f"{unique('c')}@customer.example", to=address,
                        subject=f"to {address}", body="Hello")
        got = await receive_email(runtime, raw, inbox_id=None, envelope_recipients=[address],
                                  source="test")
        assert (got.status, got.inbox_id) == ("stored", inbox_id), got


async def test_the_new_acknowledgement_is_what_the_next_new_mail_gets(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    # Routing is remembered per process: a first mail before the change fills that memory.
    first = make_mail(sender=f"{unique('c')}@customer.example", to=address, body="First")
    await receive_email(runtime, first, inbox_id=None, envelope_recipients=[address],
                        source="test")
    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                        json={"auto_acknowledgement": "Thanks, we are on it."})
    assert r.status_code == 200, r.text
    mail = make_mail(sender=f"{unique('c')}@customer.example", to=address, body="Second")
    got = await receive_email(runtime, mail, inbox_id=None, envelope_recipients=[address],
                              source="test")
    assert got.status == "stored"
    page = (await api.get(f"/api/v1/conversations/{got.conversation_id}/messages",
                          headers=ws.admin.headers)).json()
    assert [m["content"] for m in page["items"] if m["sender_type"] == "bot"] == [
        "Thanks, we are on it."]


async def test_an_address_another_inbox_owns_is_refused(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other_ws = await factory.api_workspace(), await factory.api_workspace()
    inbox_id, own = await factory.email_inbox(ws)
    _, theirs = await factory.email_inbox(other_ws)
    _, sibling = await factory.email_inbox(ws)
    for taken in (theirs, sibling):
        r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                            json={"email": taken})
        assert_error(r, 409, "email_address_taken")
    # Its own address again is no change, not a conflict.
    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                        json={"email": own})
    assert r.status_code == 200 and r.json()["settings"]["email"] == own


async def test_header_values_and_addresses_are_checked(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox_id, _ = await factory.email_inbox(ws)
    url = f"/api/v1/inboxes/{inbox_id}"
    r = await api.patch(url, headers=ws.admin.headers,
                        json={"from_name": "ACME\r\nBcc: victim@example.com"})
    assert error_fields(r) == ["body.from_name"]
    r = await api.patch(url, headers=ws.admin.headers, json={"email": "a@b.example\nX: y"})
    assert error_fields(r) == ["body.email"]
    assert_error(await api.patch(url, headers=ws.admin.headers, json={"email": "nobody"}),
                 422, "invalid_email")
    assert_error(await api.patch(url, headers=ws.admin.headers,
                                 json={"email": "help+x@example.com"}), 422, "invalid_email")
    # Allow-listed: the channel, the workspace or settings as a whole are not fields.
    for smuggled in ({"channel": "api"}, {"workspace_id": 1}, {"settings": {"email": "x"}}):
        r = await api.patch(url, headers=ws.admin.headers, json=smuggled)
        assert_error(r, 422)


async def test_email_settings_are_for_email_inboxes_and_admins_of_the_workspace(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws, other_ws = await factory.api_workspace(), await factory.api_workspace()
    supervisor = await factory.api_member(ws, Role.SUPERVISOR)
    api_inbox = await factory.inbox(ws)
    inbox_id, _ = await factory.email_inbox(ws)
    r = await api.patch(f"/api/v1/inboxes/{api_inbox}", headers=ws.admin.headers,
                        json={"from_name": "Support"})
    assert_error(r, 422, "not_an_email_inbox")
    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=supervisor.headers,
                        json={"from_name": "Support"})
    assert_error(r, 403)
    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=other_ws.admin.headers,
                        json={"from_name": "Support"})
    assert_error(r, 404)
    got = (await api.get(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers)).json()
    assert got["settings"]["from_name"] == "Support"  # the factory's, unchanged
