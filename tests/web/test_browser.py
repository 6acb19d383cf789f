"""The agent workspace in a real browser (Debian's Chromium through Playwright) against a
real server: what an agent does all day, checked the way they would see it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import TIMEOUT, World, make_world, sign_in, wait_live

pytestmark = pytest.mark.browser

# The pages' Content-Security-Policy forbids eval, so `wait_for_function` strings cannot run
# in them (which is the point); waits use locators and `expect` instead.


def test_sign_in_shows_the_workspace_inbox(context: Any, world: World) -> None:
    page = context.new_page()
    sign_in(page, world, world.admin)
    wait_live(page)
    names = page.locator("#rows .row-name").all_inner_texts()
    assert names == ["Fatima Zahra", "Lucas Martin", "Emily Carter"]  # newest activity first
    assert page.locator("#nav-all .count").inner_text() == "3"
    assert page.locator("#nav-unassigned .count").inner_text() == "3"


def test_a_wrong_password_is_refused_with_a_message(context: Any, world: World) -> None:
    page = context.new_page()
    page.goto(f"{world.server.url}/app/login")
    page.get_by_label("E-mail").fill(world.anna.email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    assert "do not match" in page.get_by_role("alert").inner_text()
    assert "/app/login" in page.url


def test_open_a_conversation_reply_and_the_reply_is_stored(context: Any, world: World) -> None:
    page = context.new_page()
    sign_in(page, world, world.anna)
    page.goto(f"{world.server.url}/app/inbox?view=all")
    page.locator("#rows .row-link", has_text="Emily Carter").click()
    page.wait_for_selector("#conversation")
    assert "My invoice was charged twice." in page.locator("#thread").inner_text()
    assert page.locator("#contact-panel").get_by_text("Emily Carter").count() >= 1
    page.get_by_label("Message", exact=True).fill("We refunded the second charge.")
    page.get_by_role("button", name="Send").click()
    page.locator("#thread .msg-outgoing", has_text="We refunded the second charge.").wait_for()
    assert page.get_by_label("Message", exact=True).input_value() == ""
    page.locator("#composer .ctab-note").click()
    page.get_by_label("Message", exact=True).fill("Customer is a VIP, be quick.")
    page.get_by_role("button", name="Add note").click()
    page.locator("#thread .msg-note", has_text="Customer is a VIP").wait_for()

    stored = world.messages(world.conversations[0])
    by_type = {m["message_type"]: m for m in stored}
    assert by_type["outgoing"]["content"] == "We refunded the second charge."
    assert by_type["outgoing"]["sender_user_id"] == world.anna.user_id
    assert by_type["note"]["content"] == "Customer is a VIP, be quick."


def test_a_message_pushed_through_the_api_appears_live(context: Any, world: World) -> None:
    page = context.new_page()
    sign_in(page, world, world.admin)
    page.goto(f"{world.server.url}/app/conversations/{world.conversations[1]}?view=all")
    wait_live(page)

    world.push("Hello from a brand new customer", name="Nadia Novak")
    row = page.locator("#rows li.row", has_text="Nadia Novak")
    row.wait_for()
    assert page.locator("#rows .row-name").first.inner_text() == "Nadia Novak"  # on top
    assert "unread" in (row.get_attribute("class") or "")
    expect(page.locator("#nav-all .count")).to_have_text("4")

    # A message in the conversation that is open appears in its thread.
    lucas = page.locator("#rows .row-name").all_inner_texts().index("Lucas Martin")
    assert lucas > 0
    world.push("It crashes again", identifier=_identifier(world, world.conversations[1]))
    page.locator("#thread .msg-incoming", has_text="It crashes again").wait_for()
    expect(page.locator("#rows .row-name").first).to_have_text("Lucas Martin")
    assert page.url.endswith(f"/app/conversations/{world.conversations[1]}?view=all")  # no reload


def _identifier(world: World, conversation_id: int) -> str:
    """The external id of the conversation's contact (to continue it through the API)."""
    with world.api() as api:
        contact_id = api.get(f"/api/v1/conversations/{conversation_id}").json()["contact_id"]
        contact = api.get(f"/api/v1/contacts/{contact_id}").json()
    return next(i["value"] for i in contact["identities"] if i["kind"] == "external")


def test_two_agents_on_one_conversation_see_each_other(browser: Any, world: World) -> None:
    anna_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    omar_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        for ctx in (anna_ctx, omar_ctx):
            ctx.set_default_timeout(TIMEOUT)
        anna, omar = anna_ctx.new_page(), omar_ctx.new_page()
        url = f"{world.server.url}/app/conversations/{world.conversations[0]}?view=all"
        sign_in(anna, world, world.anna)
        sign_in(omar, world, world.omar)
        omar.goto(url)
        wait_live(omar)
        anna.goto(url)
        wait_live(anna)

        omar.locator("#presence", has_text="Anna Agent is viewing").wait_for()
        anna.locator("#presence", has_text="Omar Agent is viewing").wait_for()
        anna.get_by_label("Message", exact=True).press_sequentially("Let me check")
        omar.locator("#presence", has_text="Anna Agent is replying").wait_for()
        # The row in the list shows who is there too.
        assert "Anna Agent" in omar.locator(
            f'[data-presence-for="{world.conversations[0]}"]').inner_text()
        anna.goto(f"{world.server.url}/app/inbox?view=all")  # Anna leaves
        expect(omar.locator("#presence")).to_have_text("")
    finally:
        anna_ctx.close()
        omar_ctx.close()


def test_the_keyboard_drives_the_inbox(context: Any, world: World) -> None:
    page = context.new_page()
    sign_in(page, world, world.anna)
    page.goto(f"{world.server.url}/app/inbox?view=all")
    wait_live(page)
    keyboard = page.keyboard
    keyboard.press("j")
    keyboard.press("j")
    selected = page.locator("#rows li.row.is-selected .row-name")
    assert selected.inner_text() == "Lucas Martin"
    keyboard.press("k")
    assert selected.inner_text() == "Fatima Zahra"
    keyboard.press("Enter")
    page.locator("#conv-title", has_text="Fatima Zahra").wait_for()

    keyboard.press("n")
    assert page.evaluate("document.activeElement.id") == "composer-text"
    assert page.locator('#composer input[value="note"]').is_checked()
    keyboard.press("Escape")
    keyboard.press("r")
    assert page.locator('#composer input[value="reply"]').is_checked()
    keyboard.press("Escape")

    keyboard.press("a")  # assign to me
    expect(page.locator(f"#assignee-{world.conversations[2]}")).to_have_value(
        str(world.anna.user_id))
    keyboard.press("e")  # resolve
    page.locator("#conv-status", has_text="Resolved").wait_for()
    stored = world.conversation(world.conversations[2])
    assert (stored["status"], stored["assignee_id"]) == ("resolved", world.anna.user_id)

    keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    keyboard.press("Escape")
    keyboard.press("?")
    page.locator("#shortcuts[open]").wait_for()
    assert "Next / previous conversation" in page.locator("#shortcuts").inner_text()


def test_the_arabic_ui_is_right_to_left_and_translated(browser: Any, web_server: Any) -> None:
    world = make_world(web_server, locale="ar", conversations=1)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(TIMEOUT)
    try:
        page = ctx.new_page()
        page.goto(f"{world.server.url}/app/login?lang=ar")
        assert page.locator("html").get_attribute("dir") == "rtl"
        page.get_by_label("البريد الإلكتروني").fill(world.anna.email)
        page.get_by_label("كلمة المرور").fill(world.anna.password)
        page.get_by_role("button", name="تسجيل الدخول").click()
        page.wait_for_url(re.compile(r"/app/inbox"))
        html = page.locator("html")
        assert (html.get_attribute("dir"), html.get_attribute("lang")) == ("rtl", "ar")
        assert page.locator("#nav-mine .nav-label").inner_text() == "محادثاتي"
        assert page.get_by_role("button", name="تسجيل الخروج").count() == 1
        # Mirrored: the menu is on the right of the list.
        sidebar = page.locator("#sidebar").bounding_box()
        listing = page.locator("#list-region").bounding_box()
        assert sidebar["x"] > listing["x"]
        assert page.locator("#rows li.row").count() == 0  # an agent starts on "Mine"
        page.locator("#nav-all").click()
        page.locator("#rows .row-link").first.click()
        page.locator("#composer").get_by_text("ملاحظة خاصة").wait_for()
    finally:
        ctx.close()


def test_a_forged_or_missing_csrf_token_is_refused(context: Any, world: World) -> None:
    page = context.new_page()
    sign_in(page, world, world.anna)
    conversation = world.conversations[0]
    url = f"{world.server.url}/app/conversations/{conversation}/reply"
    form = {"content": "sent by a forged form", "mode": "reply"}
    missing = context.request.post(url, form=form)
    forged = context.request.post(url, form={**form, "csrf_token": "forged"},
                                  headers={"X-CSRF-Token": "forged"})
    assert (missing.status, forged.status) == (403, 403)
    assert "did not come from Frontdesk" in missing.text()
    assert all(m["content"] != "sent by a forged form" for m in world.messages(conversation))

    # The page's own token works, through the same request API.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    ok = context.request.post(url, form={**form, "csrf_token": token})
    assert ok.status == 200
    assert any(m["content"] == "sent by a forged form" for m in world.messages(conversation))
