"""In a real browser (Debian's Chromium through Playwright) against a real server: an agent
snoozes a conversation until a time they pick, in their own time zone; an admin deletes a
team, whose conversations stay, without it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import World, sign_in

pytestmark = pytest.mark.browser


def test_a_conversation_is_snoozed_until_a_chosen_time(context: Any, world: World) -> None:
    conversation_id = world.conversations[0]
    page = context.new_page()
    sign_in(page, world, world.anna)
    page.goto(f"{world.server.url}/app/conversations/{conversation_id}?view=all")
    page.wait_for_selector("#conversation")

    page.get_by_label("More statuses").click()
    until = (datetime.now(UTC) + timedelta(days=2)).replace(hour=14, minute=45, second=0,
                                                            microsecond=0)
    page.get_by_label("Snooze until").fill(until.strftime("%Y-%m-%dT%H:%M"))  # agent in UTC
    form = page.locator("form.menu-form", has=page.get_by_label("Snooze until"))
    form.get_by_role("button", name="Snooze").click()

    expect(page.locator("#conv-status")).to_contain_text("Snoozed")
    snoozed = world.conversation(conversation_id)
    assert snoozed["status"] == "snoozed"
    assert datetime.fromisoformat(snoozed["snoozed_until"]) == until


def test_an_admin_deletes_a_team_and_its_conversation_stays_without_one(
    context: Any, world: World
) -> None:
    conversation_id = world.conversations[1]
    with world.api() as api:
        r = api.post(f"/api/v1/conversations/{conversation_id}/assign",
                     json={"assignee_id": world.anna.user_id, "team_id": world.team_id})
        assert r.status_code == 200, r.text
    page = context.new_page()
    sign_in(page, world, world.admin)
    page.goto(f"{world.server.url}/app/admin/teams")
    team = page.locator("section.team", has=page.get_by_role("heading", name=re.compile(
        "Support")))
    team.locator("summary", has_text="Delete").click()
    expect(team).to_contain_text("Its conversations stay, without a team")
    team.get_by_role("button", name="Delete team").click()

    expect(page.locator(".toast")).to_have_text(
        "The team is deleted; its conversations no longer have a team.")
    expect(page.locator("section.team")).to_have_count(0)
    with world.api() as api:
        assert api.get("/api/v1/teams").json() == []
        users = {u["id"] for u in api.get("/api/v1/users").json()}
    assert world.anna.user_id in users  # its member stays in the workspace
    kept = world.conversation(conversation_id)
    assert (kept["team_id"], kept["assignee_id"]) == (None, world.anna.user_id)
