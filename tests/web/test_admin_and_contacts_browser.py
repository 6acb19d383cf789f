"""The admin screens and the contact page in a real browser (Debian's Chromium through
Playwright) against a real server: an admin sets up a team and an API token; a contact is
edited and merged with their duplicate, by keyboard-reachable, labelled controls."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.web.conftest import World, sign_in

pytestmark = pytest.mark.browser



def test_an_admin_creates_a_team_with_a_member_and_an_api_token(
    context: Any, world: World
) -> None:
    page = context.new_page()
    sign_in(page, world, world.admin)
    page.get_by_role("link", name="Admin").click()
    page.wait_for_url(re.compile(r"/app/admin/users$"))
    page.get_by_role("link", name="Teams").click()
    page.get_by_label("Name", exact=True).fill("Night shift")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator(".toast")).to_have_text("The team is created.")
    team = page.locator("section.team", has=page.get_by_role("heading", name=re.compile(
        "Night shift")))
    team.get_by_label("Add a member").select_option(label="Omar Agent")
    team.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator(".toast")).to_have_text("The team has a new member.")
    expect(page.locator("section.team", has_text="Night shift")).to_contain_text("Omar Agent")

    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("What it is for").fill("Warehouse sync")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("API token", exact=True).input_value()
    assert token.startswith("fd_")
    expect(page.locator("tbody tr", has_text="Warehouse sync")).to_contain_text(token[:10])

    with httpx.Client(base_url=world.server.url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as api:
        assert api.get("/api/v1/me").json()["email"] == world.admin.email
        teams = {t["name"]: t for t in api.get("/api/v1/teams").json()}
    assert teams["Night shift"]["member_ids"] == [world.omar.user_id]

    # Reloading the list never shows the token again.
    page.goto(f"{world.server.url}/app/admin/tokens")
    assert token not in page.content()


def test_an_agent_cannot_open_the_admin_area(context: Any, world: World) -> None:
    page = context.new_page()
    sign_in(page, world, world.anna)
    assert page.get_by_role("link", name="Admin").count() == 0
    response = page.goto(f"{world.server.url}/app/admin/teams")
    assert response is not None and response.status == 403
    expect(page.locator(".error-message")).to_have_text("This page is for supervisors and admins.")


def test_a_contact_is_edited_and_merged_from_the_ui(context: Any, world: World) -> None:
    emily = world.push("Is my refund on its way?", name="Emily Carter",
                       email="emily.carter@example.com")
    duplicate = world.push("Hi, it's Emily again, from my phone.", name="Em C.",
                           identifier="phone-app-7731")
    page = context.new_page()
    sign_in(page, world, world.admin)
    page.goto(f"{world.server.url}/app/conversations/{emily['conversation_id']}")
    page.locator("#contact-panel").get_by_role("link", name="Emily Carter").click()
    page.wait_for_url(re.compile(rf"/app/contacts/{emily['contact_id']}$"))

    page.get_by_label("Name", exact=True).fill("Emily J. Carter")
    page.get_by_label("Preferred phone").fill("+44 20 7946 0958")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".toast")).to_have_text("The contact is saved.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Emily J. Carter")
    expect(page.locator(".identity-list").first).to_contain_text("+442079460958")

    page.get_by_label("Attribute", exact=True).fill("plan")
    page.get_by_label("Value", exact=True).fill("Gold")
    page.get_by_role("button", name="Set").click()
    expect(page.locator(".attr-list")).to_contain_text("Gold")

    page.get_by_role("link", name="Merge with another contact…").click()
    page.get_by_label("Find the other contact").fill("Em C.")
    page.get_by_label("Find the other contact").press("Enter")
    page.get_by_role("link", name=re.compile("Em C.")).click()
    confirm = page.get_by_role("button", name=re.compile("Merge “Em C.” into"))
    expect(confirm).to_be_visible()
    confirm.click()
    expect(page.locator(".toast")).to_contain_text("The contacts are merged")
    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("Hi, it's Emily again, from my phone.")
    expect(timeline).to_contain_text("Is my refund on its way?")

    with world.api() as api:
        contact = api.get(f"/api/v1/contacts/{emily['contact_id']}").json()
        assert api.get(f"/api/v1/contacts/{duplicate['contact_id']}").status_code == 404
        moved = api.get(f"/api/v1/conversations/{duplicate['conversation_id']}").json()
    assert contact["name"] == "Emily J. Carter"
    assert contact["custom_attributes"] == {"plan": "Gold"}
    assert {i["value"] for i in contact["identities"]} >= {"phone-app-7731",
                                                           "emily.carter@example.com"}
    assert moved["contact_id"] == emily["contact_id"]


def test_the_contact_page_in_arabic_is_right_to_left_and_reachable_by_keyboard(
    context: Any, world: World
) -> None:
    ids = world.push("مرحبا، أين طلبي؟", name="فاطمة الزهراء")
    page = context.new_page()
    sign_in(page, world, world.admin)
    page.select_option("#ui-locale", "ar")
    page.wait_for_load_state("networkidle")
    page.goto(f"{world.server.url}/app/contacts/{ids['contact_id']}")
    assert page.locator("html").get_attribute("dir") == "rtl"
    expect(page.get_by_role("heading", name="المحادثات على كل القنوات")).to_be_visible()
    # The name field's label is tied to it, and Tab reaches it with a visible focus ring.
    field = page.get_by_label("الاسم", exact=True)
    field.focus()
    outline = field.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none"
    # Logical properties: in RTL the profile column sits on the right.
    profile = page.locator(".contact-profile").bounding_box()
    activity = page.locator(".contact-activity").bounding_box()
    assert profile and activity and profile["x"] > activity["x"]


def test_the_contact_list_is_searched_from_the_keyboard(context: Any, world: World) -> None:
    page = context.new_page()
    sign_in(page, world, world.anna)
    page.get_by_role("link", name="Contacts").first.click()
    page.wait_for_url(re.compile(r"/app/contacts$"))
    page.locator("body").press("/")
    expect(page.get_by_label("Search contacts")).to_be_focused()
    page.keyboard.type("Lucas")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/app/contacts\?q=Lucas"))
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_role("link", name="Lucas Martin").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Lucas Martin")
