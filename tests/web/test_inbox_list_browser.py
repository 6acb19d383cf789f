"""The inbox list in a real browser: saving the list on screen as a view, and resolving a
selection made with the keyboard in one go."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import World, sign_in, wait_live

pytestmark = pytest.mark.browser



def test_saving_the_list_on_screen_as_a_view(context: Any, world: World) -> None:
    page = context.new_page()
    sign_in(page, world, world.anna)
    page.goto(f"{world.server.url}/app/inbox?view=all")
    wait_live(page)
    page.locator("#filter-sort").select_option("oldest")
    expect(page.locator("#rows .row-name").first).to_have_text("Emily Carter")
    assert page.locator("#rows .row-name").all_inner_texts() == [
        "Emily Carter", "Lucas Martin", "Fatima Zahra"]

    page.locator("#save-view summary").click()
    page.get_by_label("Name of the view").fill("Oldest first")
    page.locator("#save-view").get_by_role("button", name="Save").click()
    saved = page.locator("#nav-saved .nav-item", has_text="Oldest first")
    expect(saved).to_have_attribute("aria-current", "page")
    expect(page.locator("#list-title")).to_have_text("Oldest first")
    expect(saved.locator(".count")).to_have_text("3")
    assert re.search(r"saved=\d+", page.url) and "sort=oldest" in page.url

    # It is stored as Anna's own view, with the sort she chose.
    with world.api() as api:
        api.headers["Authorization"] = f"Bearer {world.anna.token}"
        views = api.get("/api/v1/views").json()["items"]
    assert [(v["name"], v["shared"], v["filters"]["sort"]) for v in views] == [
        ("Oldest first", False, "oldest")]

    # Another list, then back through the navigation: the view's order again.
    page.locator("#nav-mine").click()
    expect(page.locator("#list-title")).to_have_text("Mine")
    saved.click()
    expect(page.locator("#list-title")).to_have_text("Oldest first")
    expect(page.locator("#rows .row-name").first).to_have_text("Emily Carter")


def test_a_keyboard_selection_is_resolved_at_once(context: Any, world: World) -> None:
    page = context.new_page()
    sign_in(page, world, world.admin)
    page.goto(f"{world.server.url}/app/inbox?view=all")
    wait_live(page)
    keyboard = page.keyboard
    keyboard.press("j")
    keyboard.press("x")  # Fatima Zahra
    keyboard.press("j")
    keyboard.press("j")
    keyboard.press("x")  # Emily Carter
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    expect(page.locator("#bulk-actions")).to_be_visible()
    assert page.locator("#rows li.row.is-checked .row-name").all_inner_texts() == [
        "Fatima Zahra", "Emily Carter"]

    keyboard.press("e")  # with rows ticked: resolve them all
    expect(page.locator("#rows .row-name")).to_have_text(["Lucas Martin"])
    expect(page.locator("#bulk-actions")).to_be_hidden()
    expect(page.locator("#nav-all .count")).to_have_text("1")
    statuses = [world.conversation(c)["status"] for c in world.conversations]
    assert statuses == ["resolved", "open", "resolved"]

    # Shift-click ticks a range; "select all" ticks the page.
    page.locator('#status-tabs a[href*="status=resolved"]').click()
    expect(page.locator("#rows .row-name")).to_have_count(2)
    page.locator("#select-all").check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
