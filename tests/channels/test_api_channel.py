"""The API channel's door: what it refuses, and how it says so."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.apitools import assert_error, error_fields
from tests.factories import Factory

VALID: dict[str, Any] = {"external_id": "e-1", "contact": {"identifier": "c-1"},
                         "content": "Hello"}


def _with(**changes: Any) -> dict[str, Any]:
    body = {**VALID, **changes}
    return {k: v for k, v in body.items() if v is not ...}


@pytest.mark.parametrize(("body", "field"), [
    (_with(contact={"name": "Nobody"}), "body.contact"),
    (_with(contact={}), "body.contact"),
    (_with(contact=...), "body.contact"),
    (_with(contact={"email": "not-an-address"}), "body.contact.email"),
    (_with(contact={"email": "a@b@example.com"}), "body.contact.email"),
    (_with(contact={"phone": "12"}), "body.contact.phone"),
    (_with(contact={"phone": "call me maybe"}), "body.contact.phone"),
    (_with(contact={"phone": "9161234567"}), "body.contact.phone"),  # no country code
    (_with(content=""), "body.content"),
    (_with(content="   \n"), "body.content"),
    (_with(content=...), "body.content"),
    (_with(content=42), "body.content"),
    (_with(external_id=""), "body.external_id"),
    (_with(external_id=...), "body.external_id"),
    (_with(workspace_id=1), "body.workspace_id"),
    (_with(conversation_id=1), "body.conversation_id"),
    (_with(contact={"identifier": "c-1", "id": 1}), "body.contact.id"),
    (_with(attachments=[{"url": "https://x.test/a.png", "secret": 1}]),
     "body.attachments.0.secret"),
    (_with(content="nul\u0000byte"), "body.content"),
], ids=["no-identity", "empty-contact", "no-contact", "bad-email", "two-ats", "short-phone",
        "words-phone", "local-phone", "empty-content", "blank-content", "no-content",
        "number-content", "empty-external-id", "no-external-id", "workspace_id", "conversation_id",
        "contact-id", "attachment-extra", "nul-in-content"])
async def test_an_invalid_message_is_refused_naming_the_field(
    body: dict[str, Any], field: str, api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    r = await api.post(f"/api/v1/inboxes/{inbox}/incoming", headers=ws.admin.headers, json=body)
    assert field in error_fields(r)
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"]
    listed = await api.get("/api/v1/conversations", headers=ws.admin.headers)
    assert listed.json()["items"] == []


async def test_a_body_that_is_not_json_is_refused(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    url = f"/api/v1/inboxes/{inbox}/incoming"
    for content in (b"{not json", b"\xff\xfe\xfa", b'{"content": "\xff"}', b"[]", b""):
        r = await api.post(url, content=content, headers={
            **ws.admin.headers, "content-type": "application/json"})
        assert error_fields(r), content


async def test_an_unknown_inbox_answers_404(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    r = await api.post("/api/v1/inboxes/999999999/incoming", headers=ws.admin.headers, json=VALID)
    assert_error(r, 404, "not_found")


async def test_an_inbox_of_another_workspace_answers_404_and_stores_nothing(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    owner, intruder = await factory.api_workspace(), await factory.api_workspace()
    inbox = await factory.inbox(owner)
    r = await api.post(f"/api/v1/inboxes/{inbox}/incoming", headers=intruder.admin.headers,
                       json=VALID)
    assert_error(r, 404, "not_found")
    for ws in (owner, intruder):
        listed = await api.get("/api/v1/conversations", headers=ws.admin.headers)
        assert listed.json()["items"] == []
    # The owner's own push with the same external id is the first one, not a repeat.
    r = await api.post(f"/api/v1/inboxes/{inbox}/incoming", headers=owner.admin.headers,
                       json=VALID)
    assert r.status_code == 201


async def test_an_accepted_message_answers_with_its_ids_and_is_stored_as_sent(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    r = await api.post(f"/api/v1/inboxes/{inbox}/incoming", headers=ws.admin.headers, json={
        **VALID, "subject": "Order 1042", "contact": {"identifier": "c-9", "name": "Олег"},
        "content": "Здравствуйте, не приходит код",
        "attachments": [{"url": "https://files.example.com/1.png", "filename": "1.png",
                         "content_type": "image/png", "size": 1024}]})
    assert r.status_code == 201, r.text
    ids = r.json()
    assert set(ids) == {"message_id", "conversation_id", "contact_id"}
    conversation = (await api.get(f"/api/v1/conversations/{ids['conversation_id']}",
                                  headers=ws.admin.headers)).json()
    assert conversation["subject"] == "Order 1042"
    assert conversation["contact_id"] == ids["contact_id"]
    assert conversation["inbox_id"] == inbox
    (message,) = (await api.get(f"/api/v1/conversations/{ids['conversation_id']}/messages",
                                headers=ws.admin.headers)).json()["items"]
    assert message["id"] == ids["message_id"]
    assert message["content"] == "Здравствуйте, не приходит код"
    assert (message["message_type"], message["sender_type"]) == ("incoming", "contact")
    assert message["sender_contact_id"] == ids["contact_id"]
    assert message["external_id"] == "e-1"
    assert message["attachments"][0]["filename"] == "1.png"
