"""Unread conversations in a real browser: customers' messages mark rows unread live,
opening a conversation reads it, and the same agent's other browser follows, as does the
server after a reload."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.factories import unique
from tests.web.conftest import World, sign_in, wait_live

pytestmark = pytest.mark.browser

UNREAD = re.compile(r"\bunread\b")


def _unread_for(world: World, token: str, conversation_id: int) -> bool:
    with world.api() as api:
        api.headers["Authorization"] = f"Bearer {token}"
        r = api.get(f"/api/v1/conversations/{conversation_id}")
    assert r.status_code == 200, r.text
    return bool(r.json()["unread"])


def test_unread_rows_follow_the_agent_across_browsers(
    context: Any, browser: Any, world: World,
) -> None:
    nina = unique("nina")
    nina_id = int(world.push("Is my order lost?", identifier=nina, name="Nina Petrova")
                  ["conversation_id"])
    other_context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        desk, laptop = context.new_page(), other_context.new_page()
        for page in (desk, laptop):
            sign_in(page, world, world.anna)
            page.goto(f"{world.server.url}/app/inbox?view=all")
            wait_live(page)
            # Nothing read yet: every conversation with a customer's message is unread.
            expect(page.locator("#rows > li.row.unread")).to_have_count(4)
        row_on_laptop = laptop.locator(f"#row-{nina_id}")

        # Opening it on one computer reads it there, on the other one live, and on the server.
        desk.locator(f"#row-{nina_id} .row-link").click()
        expect(desk.locator("#conv-title")).to_have_text("Nina Petrova")
        expect(desk.locator(f"#row-{nina_id}")).not_to_have_class(UNREAD)
        expect(row_on_laptop).not_to_have_class(UNREAD)
        assert not _unread_for(world, world.anna.token, nina_id)
        assert _unread_for(world, world.omar.token, nina_id)  # Omar has not read it
        laptop.reload()
        wait_live(laptop)
        expect(laptop.locator("#rows > li.row.unread")).to_have_count(3)
        expect(row_on_laptop).not_to_have_class(UNREAD)

        # Nina writes again while the desk shows her conversation: read there as it arrives.
        world.push("Hello? Anyone?", identifier=nina, name="Nina Petrova")
        expect(desk.locator("#thread")).to_contain_text("Hello? Anyone?")
        expect(desk.locator(f"#row-{nina_id}")).not_to_have_class(UNREAD)
        expect(row_on_laptop).not_to_have_class(UNREAD)
        expect(laptop.locator(f"#row-{nina_id} .row-preview")).to_contain_text("Hello? Anyone?")

        # A new customer: a new row, unread in both browsers.
        wang_id = int(world.push("Where is my order?", name="Wang Fang")["conversation_id"])
        for page in (desk, laptop):
            expect(page.locator(f"#row-{wang_id}")).to_have_class(UNREAD)

        # Read on the laptop, then marked unread again there: the desk follows both.
        laptop.locator(f"#row-{wang_id} .row-link").click()
        expect(laptop.locator("#conv-title")).to_have_text("Wang Fang")
        expect(desk.locator(f"#row-{wang_id}")).not_to_have_class(UNREAD)
        laptop.locator("#conv-head").get_by_role("button", name="Mark as unread").click()
        laptop.wait_for_url(re.compile(r"/app/inbox\?"))
        expect(laptop.locator(f"#row-{wang_id}")).to_have_class(UNREAD)
        expect(desk.locator(f"#row-{wang_id}")).to_have_class(UNREAD)
        assert _unread_for(world, world.anna.token, wang_id)

        # The keyboard does the same: u on an open conversation.
        emily_id = world.conversations[0]
        desk.locator(f"#row-{emily_id} .row-link").click()
        expect(desk.locator("#conv-title")).to_have_text("Emily Carter")
        expect(laptop.locator(f"#row-{emily_id}")).not_to_have_class(UNREAD)
        desk.locator("#thread").focus()
        desk.keyboard.press("u")
        desk.wait_for_url(re.compile(r"/app/inbox\?"))
        expect(desk.locator(f"#row-{emily_id}")).to_have_class(UNREAD)
        expect(laptop.locator(f"#row-{emily_id}")).to_have_class(UNREAD)

        # The unread filter lists what is left to read.
        laptop.locator("#filter-unread").check()
        expect(laptop.locator("#rows > li.row")).to_have_count(4)
        assert not laptop.locator(f"#row-{nina_id}").count()
    finally:
        other_context.close()
