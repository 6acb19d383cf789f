"""E-mail administration in a real browser (Debian's Chromium through Playwright) against a
real server: an admin creates an e-mail inbox, is told why an IMAP server on loopback is
refused (the test server keeps FRONTDESK_IMAP_ALLOW_PRIVATE off), saves IMAP settings, and
re-processes a mail the rate limit had quarantined."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from frontdesk.channels.email.service import ReceivedEmail, receive_email
from tests.channels.email.mailmaker import make_mail
from tests.factories import unique
from tests.web.conftest import World, sign_in

pytestmark = pytest.mark.browser



def receive(world: World, address: str, sender: str, n: int) -> ReceivedEmail:
    raw = make_mail(sender=sender, to=address, subject=f"Order {n} is late",
                    body=f"Where is order {n}?")
    return world.server.run(lambda: receive_email(
        world.server.runtime, raw, inbox_id=None, envelope_recipients=[address],
        source="test"))


def test_an_admin_sets_up_an_email_inbox_and_reprocesses_a_quarantined_mail(
    context: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = context.new_page()
    sign_in(page, world, world.admin)
    page.goto(f"{world.server.url}/app/admin/users")
    page.get_by_role("link", name="Inboxes").click()
    address = f"{unique('help')}@example.com"
    form = page.locator("section", has=page.get_by_role("heading", name="New e-mail inbox"))
    form.get_by_label("Name", exact=True).fill("Help desk")
    form.get_by_label("Support address").fill(address)
    form.get_by_label("From name").fill("ACME Help")
    form.get_by_label("Acknowledge new mail automatically").check()
    form.get_by_label("Acknowledgement", exact=True).fill("We got your mail.")
    form.get_by_role("button", name="Create e-mail inbox").click()
    expect(page.locator(".toast")).to_contain_text("The e-mail inbox is created.")
    page.wait_for_url(re.compile(r"/app/admin/inboxes/\d+$"))
    inbox_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#inbox-addresses")).to_contain_text(address)

    # A second address: added, then removed again (the primary has no Remove button).
    sales = f"{unique('sales')}@example.com"
    page.get_by_label("Another address").fill(sales)
    page.get_by_role("button", name="Add address").click()
    expect(page.locator(".toast")).to_contain_text("The address is added")
    row = page.locator("#inbox-addresses li", has_text=sales)
    expect(page.locator("#inbox-addresses li", has_text=address)
           .get_by_role("button", name="Remove")).to_have_count(0)
    row.get_by_role("button", name="Remove").click()
    expect(page.locator(".toast")).to_contain_text("The address is removed")
    expect(page.locator("#inbox-addresses")).not_to_contain_text(sales)

    # IMAP: a server on loopback is refused, with the reason; a public one is saved.
    page.get_by_label("IMAP server", exact=True).fill("127.0.0.1")
    page.get_by_label("Port", exact=True).fill("993")
    page.get_by_label("User name", exact=True).fill(address)
    page.get_by_label("Password", exact=True).fill("imap-secret")
    page.get_by_role("button", name="Save IMAP settings").click()
    expect(page.locator(".toast")).to_contain_text(
        "That IMAP server is not allowed: its address is private or internal")
    page.get_by_label("IMAP server", exact=True).fill("1.1.1.1")
    page.get_by_label("Port", exact=True).fill("993")
    page.get_by_label("User name", exact=True).fill(address)
    page.get_by_label("Password", exact=True).fill("imap-secret")
    page.get_by_label("Fetch mail from this mailbox").uncheck()  # nothing connects to it
    page.get_by_role("button", name="Save IMAP settings").click()
    expect(page.locator(".toast")).to_have_text("The IMAP settings are saved.")
    expect(page.locator("#imap-state")).to_contain_text("Off")
    with world.api() as api:
        imap = api.get(f"/api/v1/inboxes/{inbox_id}/imap").json()
        inbox = api.get(f"/api/v1/inboxes/{inbox_id}").json()
    assert (imap["host"], imap["username"], imap["enabled"]) == ("1.1.1.1", address, False)
    assert inbox["settings"]["auto_acknowledgement"] == "We got your mail."

    # A sender past the rate limit: the second mail waits in quarantine.
    sender = f"{unique('storm')}@customer.example"
    monkeypatch.setattr(world.server.runtime.settings, "email_rate_limit_count", 1)
    received = [receive(world, address, sender, n) for n in (1, 2)]
    monkeypatch.undo()
    assert [r.status for r in received] == ["stored", "quarantined"]

    page.get_by_role("link", name="Mail quarantine").click()
    row = page.locator(f"#quarantined-{received[1].quarantine_id}")
    expect(row).to_contain_text(sender)
    expect(row).to_contain_text("rate_limited")
    row.get_by_role("link", name="Open").click()
    expect(page.locator(".mail-source")).to_contain_text("Where is order 2?")
    expect(page.get_by_role("link", name="Download the source")).to_have_attribute(
        "href", f"/app/admin/quarantine/{received[1].quarantine_id}/raw")
    page.get_by_role("button", name="Re-process").click()
    expect(page.locator(".toast")).to_have_text("Re-processed: the mail is a message now.")
    expect(page.get_by_role("button", name="Re-process")).to_have_count(0)
    page.get_by_role("link", name="Open its conversation").click()
    page.wait_for_url(re.compile(r"/app/conversations/\d+"))
    conversation_id = int(re.findall(r"/app/conversations/(\d+)", page.url)[0])
    contents = [m["content"] for m in world.messages(conversation_id)]
    assert any("Where is order 2?" in c for c in contents), contents
    with world.api() as api:
        assert api.get("/api/v1/email/quarantine").json() == []
