"""The workspace as an installable app with notifications, in a real browser: the manifest
and icons, the service worker controlling /app/, the in-page alert when a conversation is
assigned to the agent, and the notification settings. (Push delivery itself, which needs a
browser vendor's push service, is tested against a stand-in in tests/notifications.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import TIMEOUT, World, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def context(browser: Any) -> Any:
    ctx = browser.new_context(viewport={"width": 420, "height": 860})  # a phone
    ctx.set_default_timeout(TIMEOUT)
    yield ctx
    ctx.close()


def test_the_workspace_is_an_installable_app_with_a_service_worker(
    context: Any, world: World
) -> None:
    page = context.new_page()
    with context.expect_event("serviceworker") as registered:
        sign_in(page, world, world.anna)
    assert registered.value.url == f"{world.server.url}/app/sw.js"

    href = page.locator('link[rel="manifest"]').get_attribute("href")
    manifest = page.request.get(f"{world.server.url}{href}")
    assert manifest.ok and manifest.headers["content-type"].startswith(
        "application/manifest+json")
    body = manifest.json()
    assert body["display"] == "standalone" and body["scope"] == "/app/"
    assert body["start_url"].startswith("/app/")
    sizes = {icon["sizes"] for icon in body["icons"] if icon["type"] == "image/png"}
    assert {"192x192", "512x512"} <= sizes
    for icon in body["icons"]:
        answer = page.request.get(f"{world.server.url}{icon['src']}")
        assert answer.ok and answer.headers["content-type"] == icon["type"]
    worker = page.request.get(f"{world.server.url}/app/sw.js")
    assert worker.headers["service-worker-allowed"] == "/app/"


def test_a_conversation_assigned_by_someone_else_is_announced_in_the_open_page(
    context: Any, world: World
) -> None:
    page = context.new_page()
    sign_in(page, world, world.anna)
    # On a phone the status sits in the folded-away menu: attached, not visible.
    page.wait_for_selector('#live-status[data-state="live"]', state="attached")
    conversation_id = world.conversations[0]
    with world.api() as api:  # the admin hands it to Anna
        r = api.post(f"/api/v1/conversations/{conversation_id}/assign",
                     json={"assignee_id": world.anna.user_id})
        assert r.status_code == 200, r.text
    alert = page.locator(".toast-assigned")
    expect(alert).to_be_visible()
    expect(alert).to_have_text("A conversation was assigned to you")
    expect(alert).to_have_attribute("href", f"/app/conversations/{conversation_id}")
    alert.click()
    page.wait_for_url(re.compile(rf"/app/conversations/{conversation_id}$"))


def test_notification_settings_are_saved_and_the_page_knows_them(
    context: Any, world: World
) -> None:
    page = context.new_page()
    sign_in(page, world, world.omar)
    page.goto(f"{world.server.url}/app/settings")
    assignments = page.get_by_label("Notify me when a conversation is assigned to me")
    sound = page.get_by_label("Play a sound for new assignments")
    expect(assignments).to_be_checked()
    expect(sound).not_to_be_checked()
    sound.check()
    assignments.uncheck()
    page.locator('form[action="/app/settings/notifications"] button[type=submit]').click()
    expect(page.locator(".toast")).to_contain_text("Your notification settings are saved.")
    expect(sound).to_be_checked()
    expect(assignments).not_to_be_checked()
    config = page.locator("#fd-config").text_content() or ""
    assert '"notifySound": true' in config and '"notifyAssignments": false' in config
    # Headless Chromium has no push service to subscribe with; the switch still reports
    # the browser's state in words instead of failing silently.
    expect(page.locator("#push-status")).not_to_have_text(
        "Notifications on this browser need JavaScript.")
