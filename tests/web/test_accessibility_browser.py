"""Accessibility of the agent workspace, checked by machine: axe-core (installed from npm
by `make axe`, never loaded by the app) runs its WCAG 2 A/AA rules on every main page in
English and in Arabic (right to left), and the keyboard walks the inbox and a conversation
in the order the eye reads them, every stop showing where the focus is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.channels.email.service import receive_email
from frontdesk.conversations.schemas import ReplyIn
from frontdesk.conversations.service import reply_to_conversation
from tests.channels.email.mailmaker import make_mail
from tests.factories import unique
from tests.web.conftest import (
    _BROWSER_SKIPS,
    TIMEOUT,
    WebServer,
    World,
    make_world,
    sign_in,
    wait_live,
)

pytestmark = pytest.mark.browser

AXE_JS = Path(__file__).resolve().parents[2] / ".cache/axe-core/node_modules/axe-core/axe.min.js"
# Every success criterion of WCAG 2.0, 2.1 and 2.2 at levels A and AA that axe can test.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE_JS.exists():
        message = (f"ACCESSIBILITY TESTS NOT RUN: {AXE_JS} is missing; `make axe` installs "
                   "axe-core from npm (with CI=1 this is a failure, not a skip)")
        if os.environ.get("CI"):
            pytest.fail(message)
        _BROWSER_SKIPS.append(message)
        pytest.skip(message)
    return AXE_JS.read_text(encoding="utf-8")


def _violations(page: Any, axe_source: str) -> list[str]:
    """axe's WCAG A/AA violations on the page as it is now, one line per rule and element.

    `evaluate` goes through the DevTools protocol, which the page's Content-Security-Policy
    does not govern: the page itself still may not run inline or injected code."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)
    found = page.evaluate(
        """async tags => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                                    resultTypes: ['violations']});
            return result.violations.flatMap(v => v.nodes.map(n =>
                `${v.id} [${v.impact}] ${n.target.join(' ')}: ${n.failureSummary
                    .replace(/\\s+/g, ' ')}`));
        }""",
        WCAG_TAGS,
    )
    return list(found)


def _conversation_with_email_and_api_messages(world: World) -> tuple[int, int]:
    """A conversation whose thread has a message by API, one by e-mail (merged in), the
    agent's reply and a private note; and its contact."""
    email = f"{unique('dana')}@customer.example"
    by_api = world.push("Sent from the app", identifier=unique("dana"), email=email,
                        name="Dana Mail")
    address = f"{unique('support')}@example.com"
    with world.api() as api:
        r = api.post("/api/v1/inboxes", json={"name": "Mailbox", "channel": "email",
                                              "email": address})
        assert r.status_code == 201, r.text
    raw = make_mail(sender=f"Dana Mail <{email}>", to=address, body="Sent by mail")
    received = world.server.run(lambda: receive_email(
        world.server.runtime, raw, inbox_id=None, envelope_recipients=[address], source="test"))
    assert received.status == "stored" and received.conversation_id
    cid = int(by_api["conversation_id"])
    with world.api() as api:
        r = api.post(f"/api/v1/conversations/{cid}/merge",
                     json={"other_id": received.conversation_id})
        assert r.status_code == 200, r.text
        r = api.post(f"/api/v1/conversations/{cid}/tags", json={"tags": ["billing"]})
        assert r.status_code == 200, r.text
    admin = Principal(world.admin.user_id, world.workspace_id, Role.ADMIN)

    async def answer() -> None:
        async with world.server.runtime.sessions() as session:
            await reply_to_conversation(session, admin, cid, ReplyIn(content="We are on it."))
            await reply_to_conversation(session, admin, cid,
                                        ReplyIn(content="Refund pending.", private=True))
            await session.commit()

    world.server.run(answer)
    return cid, int(by_api["contact_id"])


def _furnish(world: World) -> None:
    """What the admin and settings pages list: a webhook and a canned response."""
    with world.api() as api:
        r = api.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                               "events": ["conversation.created"]})
        assert r.status_code == 201, r.text
        r = api.post("/api/v1/canned-responses", json={"shortcut": "thanks",
                                                       "content": "Thank you, {{contact.name}}!"})
        assert r.status_code == 201, r.text


def _check_the_conversation_tools_open(page: Any, axe_source: str,
                                       report: dict[str, list[str]]) -> None:
    """The composer with the canned-response picker open, the status menu open, and the
    keyboard shortcuts dialog: what axe cannot see while they are closed."""
    composer = page.locator("#composer-text")
    composer.click()
    composer.fill("")
    composer.press_sequentially("Hello /th")
    expect(page.locator("#canned-picker [role=option]")).to_have_count(1)
    report["composer with the canned picker"] = _violations(page, axe_source)
    composer.press("Escape")
    page.locator("#conv-head details.menu > summary").last.click()
    expect(page.locator("#conv-head details.menu[open]")).to_have_count(1)
    report["status menu open"] = _violations(page, axe_source)
    page.keyboard.press("Escape")
    page.locator("#conv-title").click()
    page.keyboard.press("?")
    expect(page.locator("#shortcuts[open]")).to_have_count(1)
    report["shortcuts dialog"] = _violations(page, axe_source)
    page.keyboard.press("Escape")


@pytest.mark.parametrize("locale", ["en", "ar"])
def test_every_main_page_passes_the_wcag_a_and_aa_rules_of_axe(
    browser: Any, web_server: WebServer, axe_source: str, locale: str,
) -> None:
    world = make_world(web_server, locale=locale, conversations=2)
    conversation_id, contact_id = _conversation_with_email_and_api_messages(world)
    _furnish(world)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale=locale)
    ctx.set_default_timeout(TIMEOUT)
    report: dict[str, list[str]] = {}
    try:
        page = ctx.new_page()
        page.goto(f"{world.server.url}/app/login?lang={locale}")
        expect(page.locator("html")).to_have_attribute("lang", locale)
        report["sign-in"] = _violations(page, axe_source)
        if locale == "en":
            sign_in(page, world, world.admin)
        else:
            page.locator("#email").fill(world.admin.email)
            page.locator("#password").fill(world.admin.password)
            page.locator("form button[type=submit]").click()
            page.wait_for_url("**/app/inbox**")
        pages = {
            "inbox": "/app/inbox?view=all",
            "conversation": f"/app/conversations/{conversation_id}?view=all",
            "contact": f"/app/contacts/{contact_id}",
            "admin members": "/app/admin/users",
            "admin teams": "/app/admin/teams",
            "admin inboxes": "/app/admin/inboxes",
            "admin tags": "/app/admin/tags",
            "admin webhooks": "/app/admin/webhooks",
            "admin tokens": "/app/admin/tokens",
            "settings": "/app/settings",
            "canned responses": "/app/settings/canned-responses",
        }
        for name, path in pages.items():
            page.goto(f"{world.server.url}{path}")
            expect(page.locator("html")).to_have_attribute("dir",
                                                           "rtl" if locale == "ar" else "ltr")
            wait_live(page)
            report[name] = _violations(page, axe_source)
            if name == "conversation":
                _check_the_conversation_tools_open(page, axe_source, report)
        # A phone: the list and the conversation one at a time, buttons with icons only.
        page.set_viewport_size({"width": 390, "height": 844})
        for name, path in (("inbox", pages["inbox"]), ("conversation", pages["conversation"])):
            page.goto(f"{world.server.url}{path}")
            page.locator('#live-status[data-state="live"]').wait_for(state="attached")
            report[f"{name} on a phone"] = _violations(page, axe_source)
    finally:
        ctx.close()
    failures = [f"{name}: {line}" for name, lines in report.items() for line in lines]
    assert not failures, (f"{len(failures)} accessibility violations ({locale}):\n"
                          + "\n".join(failures))
