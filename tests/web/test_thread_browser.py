"""The conversation view in a real browser (Debian's Chromium through Playwright): a long
thread pages back without losing the reader's place, each message shows its channel, and
the `a` key explains why it cannot take another agent's conversation."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.conversations.schemas import AssignIn, ReplyIn
from frontdesk.conversations.service import assign_conversation, reply_to_conversation
from frontdesk.web.inbox import THREAD_PAGE
from tests.factories import unique
from tests.web.conftest import World, sign_in, wait_live

pytestmark = pytest.mark.browser


def _replies(world: World, conversation_id: int, count: int) -> None:
    """`count` replies by the admin, in one transaction on the server's own loop."""
    admin = Principal(world.admin.user_id, world.workspace_id, Role.ADMIN)

    async def write() -> None:
        async with world.server.runtime.sessions() as session:
            for n in range(count):
                await reply_to_conversation(session, admin, conversation_id,
                                            ReplyIn(content=f"reply {n}"))
            await session.commit()

    world.server.run(write)


def _in_view(page: Any, selector: str) -> bool:
    """Is the element inside the thread's visible area?"""
    box = page.locator(selector).bounding_box()
    frame = page.locator("#thread").bounding_box()
    assert box and frame
    return bool(frame["y"] <= box["y"] and box["y"] + box["height"] <= frame["y"]
                + frame["height"])


def test_show_earlier_messages_pages_back_in_place_and_live_messages_still_arrive(
    context: Any, world: World,
) -> None:
    customer = unique("talker")
    ids = world.push("The very first message", identifier=customer, name="Long Talker")
    cid = int(ids["conversation_id"])
    extra = 25
    _replies(world, cid, THREAD_PAGE + extra)
    page = context.new_page()
    sign_in(page, world, world.admin)
    page.goto(f"{world.server.url}/app/conversations/{cid}?view=all")
    wait_live(page)

    thread = page.locator("#thread")
    newest = thread.locator(".msg", has_text=f"reply {THREAD_PAGE + extra - 1}")
    expect(newest).to_be_visible()  # the thread opens at its end
    expect(thread.get_by_text("The very first message")).to_have_count(0)
    first_shown = thread.locator(".msg").first
    first_shown_id = first_shown.get_attribute("id")
    assert first_shown.inner_text().count(f"reply {extra}") == 1

    thread.evaluate("t => { t.scrollTop = 0; }")
    page.get_by_role("link", name="Show earlier messages").click()
    expect(thread.get_by_text("The very first message")).to_have_count(1)
    expect(page.get_by_role("link", name="Show earlier messages")).to_have_count(0)
    # The reader stays where they were: the message that was at the top is still in view.
    assert _in_view(page, f"#{first_shown_id}")
    assert thread.locator(".msg").count() == THREAD_PAGE + extra + 1
    days = thread.locator(".day-sep").all_inner_texts()
    assert len(days) == len(set(days))  # one line per day, also where the pages meet

    # A live message appends, and the earlier page the agent opened stays open.
    world.push("A new question at the end", identifier=customer)
    expect(thread.locator(".msg-incoming", has_text="A new question at the end")).to_have_count(1)
    expect(thread.get_by_text("The very first message")).to_have_count(1)
    # So does the thread redrawn after the agent's own reply.
    page.get_by_label("Message", exact=True).fill("Here is the answer")
    page.get_by_role("button", name="Send").click()
    expect(thread.locator(".msg-outgoing", has_text="Here is the answer")).to_have_count(1)
    expect(thread.get_by_text("The very first message")).to_have_count(1)


def test_each_message_shows_the_channel_it_came_through_after_a_merge(
    context: Any, world: World,
) -> None:
    by_api = world.merged_api_and_email_conversation()

    page = context.new_page()
    sign_in(page, world, world.admin)
    page.goto(f"{world.server.url}/app/conversations/{by_api['conversation_id']}?view=all")
    thread = page.locator("#thread")
    from_app = thread.locator(".msg", has_text="Sent from the app")
    by_mail = thread.locator(".msg", has_text="Sent by mail")
    expect(from_app.get_by_role("img", name="Via API")).to_have_count(1)
    expect(by_mail.get_by_role("img", name="Via E-mail")).to_have_count(1)
    expect(from_app.get_by_role("img", name="Via E-mail")).to_have_count(0)
    # The list row says which channel the conversation is on.
    row = page.locator(f"#row-{by_api['conversation_id']}")
    expect(row.get_by_role("img", name="Via API")).to_have_count(1)


def test_the_a_key_explains_that_another_agents_conversation_is_not_for_taking(
    context: Any, world: World,
) -> None:
    cid = world.conversations[0]
    admin = Principal(world.admin.user_id, world.workspace_id, Role.ADMIN)

    async def give_to_anna() -> None:
        async with world.server.runtime.sessions() as session:
            await assign_conversation(session, admin, cid,
                                      AssignIn(assignee_id=world.anna.user_id))
            await session.commit()

    world.server.run(give_to_anna)
    page = context.new_page()
    sign_in(page, world, world.omar)
    page.goto(f"{world.server.url}/app/conversations/{cid}?view=all")
    wait_live(page)
    expect(page.get_by_role("button", name="Assign to me")).to_have_count(0)
    page.locator("#thread").focus()
    page.keyboard.press("a")
    toast = page.locator("#toasts .toast")
    expect(toast).to_have_text("Assigned to another agent; a supervisor can reassign it.")
    assert world.conversation(cid)["assignee_id"] == world.anna.user_id
