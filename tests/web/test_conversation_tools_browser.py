"""The conversation tools in a real browser: merging two of a customer's conversations from
the conversation's head, inserting a canned response with the `/` picker using only the
keyboard, and scheduling a reply for later."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.web.conftest import World, sign_in

pytestmark = pytest.mark.browser



def _second_conversation(world: World, first: int, content: str) -> int:
    """Resolve `first`, then the same customer writes again: a new conversation."""
    with world.api() as api:
        contact_id = api.get(f"/api/v1/conversations/{first}").json()["contact_id"]
        contact = api.get(f"/api/v1/contacts/{contact_id}").json()
        r = api.post(f"/api/v1/conversations/{first}/status", json={"status": "resolved"})
        assert r.status_code == 200, r.text
    identifier = next(i["value"] for i in contact["identities"] if i["kind"] == "external")
    second = int(world.push(content, identifier=identifier)["conversation_id"])
    assert second != first
    return second


def test_merge_a_conversation_into_the_customers_other_one(context: Any, world: World) -> None:
    first = world.conversations[0]  # Emily Carter: "My invoice was charged twice."
    second = _second_conversation(world, first, "Also, my address changed.")
    page = context.new_page()
    sign_in(page, world, world.anna)
    page.goto(f"{world.server.url}/app/conversations/{second}?view=all&status=any")
    page.wait_for_selector("#conversation")

    page.locator(".merge-menu summary").click()
    page.locator(f'[data-merge-target="{first}"]').click()
    page.wait_for_url(re.compile(rf"/app/conversations/{first}$"))
    thread = page.locator("#thread")
    expect(thread.locator(".msg-incoming")).to_have_count(2)
    incoming = thread.locator(".msg-incoming .msg-content").all_inner_texts()
    assert incoming == ["My invoice was charged twice.", "Also, my address changed."]
    expect(thread.locator(".msg-activity").last).to_contain_text(
        f"Merged #{second} into this conversation")
    # The survivor was resolved; the merged-in thread was open: work goes on.
    expect(page.locator("#conv-status")).to_have_text("Open")

    merged = world.conversation(second)
    assert merged["status"] == "closed" and merged["merged_into_id"] == first
    page.goto(f"{world.server.url}/app/conversations/{second}")
    expect(page.locator(".merged-link")).to_have_attribute("href", f"/app/conversations/{first}")
    # Nobody answers in the merged conversation: the composer gives way to a pointer.
    expect(page.locator(".merged-note a")).to_have_attribute("href",
                                                            f"/app/conversations/{first}")
    expect(page.locator("#composer")).to_have_count(0)


def test_the_slash_picker_inserts_a_rendered_canned_response_by_keyboard(
    context: Any, world: World
) -> None:
    with world.api() as api:
        for shortcut, content in (
                ("refund", "Hello {{contact.name}}, the refund is on its way. {{agent.name}}"),
                ("return", "Send it back to us, {{contact.name}}."),
                ("hello", "Hi!")):
            r = api.post("/api/v1/canned-responses",
                         json={"shortcut": shortcut, "content": content})
            assert r.status_code == 201, r.text
    page = context.new_page()
    sign_in(page, world, world.anna)
    page.goto(f"{world.server.url}/app/conversations/{world.conversations[0]}?view=all")
    page.wait_for_selector("#conversation")
    box = page.get_by_label("Message", exact=True)
    box.click()
    box.press_sequentially("Thanks for waiting. /re")

    picker = page.get_by_role("listbox", name="Canned responses")
    expect(picker).to_be_visible()
    options = picker.get_by_role("option")
    expect(options).to_have_count(2)  # /refund and /return, not /hello
    expect(options.nth(0)).to_have_attribute("aria-selected", "true")
    box.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    box.press("ArrowUp")
    box.press("Enter")
    expect(picker).to_be_hidden()
    expect(box).to_have_value(
        "Thanks for waiting. Hello Emily Carter, the refund is on its way. Anna Agent")
    # Enter chose the response; it did not send the message.
    assert not [m for m in world.messages(world.conversations[0])
                if m["message_type"] == "outgoing"]

    # Escape closes the picker and leaves the text as typed; a URL's slash opens nothing.
    box.press_sequentially(" /hel")
    expect(options).to_have_count(1)
    box.press("Escape")
    expect(picker).to_be_hidden()
    box.press_sequentially(" see https://example.com/re")
    expect(picker).to_be_hidden()


def test_a_reply_scheduled_for_later_is_listed_and_can_be_cancelled(
    context: Any, world: World
) -> None:
    cid = world.conversations[1]
    page = context.new_page()
    sign_in(page, world, world.anna)
    page.goto(f"{world.server.url}/app/conversations/{cid}?view=all")
    page.wait_for_selector("#conversation")
    page.wait_for_selector("section#scheduled", state="attached")  # the list has loaded
    page.get_by_label("Message", exact=True).fill("We will call you tomorrow morning.")
    page.locator(".send-later summary").click()
    local = datetime.now(ZoneInfo("UTC")) + timedelta(days=1)  # the agent's zone is UTC
    page.locator("[data-send-at]").fill(local.strftime("%Y-%m-%dT09:30"))
    page.locator("[data-schedule-submit]").click()

    item = page.locator("#scheduled .scheduled-item")
    expect(page.locator("#toasts .toast")).to_have_count(0)
    expect(item).to_have_count(1)
    expect(item).to_contain_text("We will call you tomorrow morning.")
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    with world.api() as api:
        rows = api.get(f"/api/v1/conversations/{cid}/scheduled-messages").json()["items"]
    assert [(r["status"], r["send_at"][11:16]) for r in rows] == [("scheduled", "09:30")]
    assert "We will call you" not in str(world.messages(cid))  # not sent yet

    item.get_by_role("button", name="Cancel").click()
    expect(page.locator("#scheduled .scheduled-item")).to_have_count(0)
    with world.api() as api:
        rows = api.get(f"/api/v1/conversations/{cid}/scheduled-messages").json()["items"]
    assert [r["status"] for r in rows] == ["cancelled"]


def test_a_scheduled_reply_goes_out_by_itself_and_the_open_conversation_shows_it(
    context: Any, world: World
) -> None:
    cid = world.conversations[2]
    page = context.new_page()
    sign_in(page, world, world.anna)
    page.goto(f"{world.server.url}/app/conversations/{cid}?view=all")
    page.wait_for_selector("section#scheduled", state="attached")
    # Through the API, a few seconds ahead: the server's own sender sends it.
    send_at = datetime.now(ZoneInfo("UTC")) + timedelta(seconds=3)
    with world.api() as api:
        r = api.post(f"/api/v1/conversations/{cid}/scheduled-messages",
                     json={"content": "Your parcel left the warehouse.",
                           "send_at": send_at.isoformat()})
        assert r.status_code == 201, r.text
    page.reload()
    expect(page.locator("#scheduled .scheduled-item")).to_have_count(1)
    sent = page.locator("#thread .msg-outgoing", has_text="Your parcel left the warehouse.")
    expect(sent).to_be_visible(timeout=20_000)  # due in 3 s; the sender polls every 5 s
    expect(page.locator("#scheduled .scheduled-item")).to_have_count(0)
    outgoing = [m for m in world.messages(cid) if m["message_type"] == "outgoing"]
    assert [(m["content"], m["sender_user_id"]) for m in outgoing] == [
        ("Your parcel left the warehouse.", world.admin.user_id)]
