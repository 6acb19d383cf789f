"""Contact notes and tags in a real browser (Debian's Chromium through Playwright) against
a real server: an agent tags a customer and writes a note about them on the contact page,
then finds both in the contact sidebar of the customer's conversation, tags them there, and
sees a note written elsewhere appear live."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import World, sign_in

pytestmark = pytest.mark.browser



def test_a_note_and_a_tag_added_on_the_contact_page_show_in_the_conversation_sidebar(
    context: Any, world: World
) -> None:
    ids = world.push("Can I pay by invoice?", name="Nadia Novak")
    page = context.new_page()
    sign_in(page, world, world.anna)
    page.goto(f"{world.server.url}/app/contacts/{ids['contact_id']}")

    page.get_by_label("Add a tag").fill("VIP")
    page.get_by_label("Add a tag").press("Enter")
    expect(page.locator(".toast")).to_have_text("The tags are saved.")
    expect(page.locator("#contact-tags")).to_contain_text("vip")

    note = "Pays by invoice <b>only</b>; call after 6 pm"
    page.get_by_label("A note about this customer").fill(note)
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".toast")).to_have_text("The note is added.")
    expect(page.locator(".note-list .note-text").first).to_have_text(note)  # as text, not HTML

    page.goto(f"{world.server.url}/app/conversations/{ids['conversation_id']}")
    sidebar = page.locator("#contact-extras")
    expect(sidebar.locator("#side-contact-tags")).to_contain_text("vip")
    expect(sidebar.locator("#side-contact-notes")).to_contain_text(note)
    expect(sidebar.locator("b")).to_have_count(0)

    # Tagged from the sidebar too: the section redraws in place, the page stays.
    sidebar.get_by_label("Add a contact tag").fill("churn-risk")
    sidebar.get_by_label("Add a contact tag").press("Enter")
    expect(page.locator("#side-contact-tags")).to_contain_text("churn-risk")
    assert re.search(rf"/app/conversations/{ids['conversation_id']}", page.url)
    with world.api() as api:
        contact = api.get(f"/api/v1/contacts/{ids['contact_id']}").json()
        notes = api.get(f"/api/v1/contacts/{ids['contact_id']}/notes").json()["items"]
    assert contact["tags"] == ["churn-risk", "vip"]
    assert [(n["body"], n["author_user_id"]) for n in notes] == [(note, world.anna.user_id)]

    # Live: a note someone else writes (here through the API) appears without a reload.
    with world.api() as api:
        r = api.post(f"/api/v1/contacts/{ids['contact_id']}/notes",
                     json={"body": "Confirmed the invoice address by phone"})
        assert r.status_code == 201, r.text
    expect(page.locator("#side-contact-notes")).to_contain_text(
        "Confirmed the invoice address by phone")
