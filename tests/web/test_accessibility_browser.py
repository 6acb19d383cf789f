"""Accessibility of the agent workspace, checked by machine: axe-core (installed from npm
by `make axe`, never loaded by the app) runs its WCAG 2 A/AA rules on every main page in
English and in Arabic (right to left), and the keyboard walks the inbox and a conversation
in the order the eye reads them, every stop showing where the focus is."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.conversations.schemas import ReplyIn
from frontdesk.conversations.service import reply_to_conversation
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


def _violations(page: Any, axe_source: str, within: str | None = None) -> list[str]:
    """axe's WCAG A/AA violations on the page as it is now, one line per rule and element;
    `within` (a selector) checks only that part: an open popover, whose page beneath is
    checked with it closed (what a menu the agent opened covers is not a fault of what
    lies under it, and where it falls depends on the lengths of names and addresses).

    `evaluate` goes through the DevTools protocol, which the page's Content-Security-Policy
    does not govern: the page itself still may not run inline or injected code."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)
    found = page.evaluate(
        """async ([tags, within]) => {
            const result = await axe.run(within ? {include: [within]} : document,
                                         {runOnly: {type: 'tag', values: tags},
                                          resultTypes: ['violations']});
            return result.violations.flatMap(v => v.nodes.map(n =>
                `${v.id} [${v.impact}] ${n.target.join(' ')}: ${n.failureSummary
                    .replace(/\\s+/g, ' ')}`));
        }""",
        [WCAG_TAGS, within],
    )
    return list(found)


def _conversation_with_email_and_api_messages(world: World) -> tuple[int, int]:
    """A conversation whose thread has a message by API, one by e-mail (merged in), the
    agent's reply and a private note; and its contact."""
    by_api = world.merged_api_and_email_conversation()
    cid = int(by_api["conversation_id"])
    with world.api() as api:
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


def _furnish(world: World) -> tuple[int, int]:
    """What the admin and settings pages list: a webhook, a canned response; the webhook's
    id and the e-mail inbox's."""
    with world.api() as api:
        r = api.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                               "events": ["conversation.created"]})
        assert r.status_code == 201, r.text
        webhook_id = int(r.json()["id"])
        r = api.post("/api/v1/canned-responses", json={"shortcut": "thanks",
                                                       "content": "Thank you, {{contact.name}}!"})
        assert r.status_code == 201, r.text
        inboxes = api.get("/api/v1/inboxes").json()
    mailbox = next(i for i in inboxes if i["channel"] == "email")
    return webhook_id, int(mailbox["id"])


def _check_the_conversation_tools_open(page: Any, axe_source: str,
                                       report: dict[str, list[str]]) -> None:
    """The composer with the canned-response picker open and in note mode, the status menu
    open, and the keyboard shortcuts dialog: what axe cannot see while they are closed."""
    composer = page.locator("#composer-text")
    composer.click()
    composer.fill("")
    composer.press_sequentially("Hello /th")
    expect(page.locator("#canned-picker [role=option]")).to_have_count(1)
    report["composer with the canned picker"] = _violations(page, axe_source)
    composer.press("Escape")
    page.locator('#composer input[value="note"]').check(force=True)
    report["composer writing a note"] = _violations(page, axe_source)
    page.locator('#composer input[value="reply"]').check(force=True)
    page.locator("#conv-head details.menu > summary").last.click()
    expect(page.locator("#conv-head details.menu[open]")).to_have_count(1)
    report["status menu open"] = _violations(page, axe_source,
                                             within="#conv-head details.menu[open]")
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
    webhook_id, mailbox_id = _furnish(world)
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
            "contacts": "/app/contacts",
            "admin": "/app/admin",
            "admin members": "/app/admin/users",
            "admin teams": "/app/admin/teams",
            "admin inboxes": "/app/admin/inboxes",
            "admin tags": "/app/admin/tags",
            "admin webhooks": "/app/admin/webhooks",
            "admin webhook": f"/app/admin/webhooks/{webhook_id}",
            "admin e-mail inbox": f"/app/admin/inboxes/{mailbox_id}",
            "admin quarantine": "/app/admin/quarantine",
            "admin tokens": "/app/admin/tokens",
            "settings": "/app/settings",
            "canned responses": "/app/settings/canned-responses",
            "not found": "/app/conversations/999999999",
        }
        for name, path in pages.items():
            page.goto(f"{world.server.url}{path}")
            expect(page.locator("html")).to_have_attribute("dir",
                                                           "rtl" if locale == "ar" else "ltr")
            if page.locator("#live-status").count():  # the error page has no live parts
                wait_live(page)
            report[name] = _violations(page, axe_source)
            if name == "inbox":
                page.locator("#rows .row-check").first.check()
                expect(page.locator("#bulk-actions")).to_be_visible()
                report["inbox with a row ticked"] = _violations(page, axe_source)
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


# --- the keyboard ---------------------------------------------------------------------

# Remembers every element's outline and shadow while nothing is focused, so a focus stop
# can tell what focusing it changed.
_REMEMBER_UNFOCUSED = """() => {
    const look = el => {
        const s = getComputedStyle(el);
        return `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}|${s.boxShadow}`;
    };
    window.__unfocused = new WeakMap();
    for (const el of document.querySelectorAll('*')) window.__unfocused.set(el, look(el));
    window.__previous = null;
}"""

# Where the focus is now, where the previous stop is now (scrolled lists move), which of the
# regions holds it, and whether the element or one of its three nearest ancestors gained
# an outline or a box-shadow (in a colour at least half opaque) by being focused.
_FOCUS_STOP = r"""regions => {
    const el = document.activeElement;
    const shown = e => { let n = e;  // a visually hidden control is seen where its label is
        while (n && n.getBoundingClientRect().width < 2) n = n.parentElement;
        return n || e; };
    const box = e => { if (!e || !e.isConnected) return null;
        const r = shown(e).getBoundingClientRect();
        return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
    const look = e => { const s = getComputedStyle(e);
        return {outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0
                         ? `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}` : null,
                shadow: s.boxShadow !== 'none' ? s.boxShadow : null}; };
    let indicator = null;
    for (let n = el, up = 0; n && n !== document.body && up < 4 && !indicator;
         n = n.parentElement, up++) {
        const now = look(n);
        const before = window.__unfocused.get(n);
        for (const value of [now.outline, now.shadow]) {
            // A faint glow is not an indicator: its colour must be at least half opaque.
            const faint = /rgba\([^)]*,\s*0(\.[0-4]\d*)?\)/.test(value || '');
            if (value && !faint && !(before || '').includes(value)) { indicator = value; break; }
        }
    }
    const region = regions.findIndex(selector => el.closest(selector));
    const name = (el.getAttribute('aria-label') || el.innerText || el.value || el.name || '')
        .trim().replace(/\s+/g, ' ').slice(0, 40);
    const stop = {what: `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''} "${name}"`,
                  region, box: box(el), previous: box(window.__previous), indicator,
                  inside_previous: !!window.__previous && window.__previous !== el
                                   && window.__previous.contains(el),
                  body: el === document.body};
    window.__previous = el;
    return stop;
}"""


def _tab_through(page: Any, regions: list[str]) -> list[dict[str, Any]]:
    """Every stop of Tab from the top of the page until the focus leaves the page or comes
    round again."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.evaluate(_REMEMBER_UNFOCUSED)
    stops: list[dict[str, Any]] = []
    for _ in range(250):
        page.keyboard.press("Tab")
        stop = page.evaluate(_FOCUS_STOP, regions)
        if stop["body"] or (stops and stop["what"] == stops[0]["what"]):
            break
        stops.append(stop)
    return stops


def _out_of_order(stops: list[dict[str, Any]], rtl: bool) -> list[str]:
    """Stops the eye would not reach next: a region visited before the previous one, or,
    inside a region, an element above the previous one, or on its line but behind it (to
    the left in English, to the right in Arabic)."""
    problems = []
    for before, stop in itertools.pairwise(stops):
        if stop["region"] < before["region"]:
            problems.append(f"{stop['what']} (region {stop['region']}) after "
                            f"{before['what']} (region {before['region']})")
            continue
        if (stop["region"] > before["region"] or stop["inside_previous"]
                or not stop["previous"] or not stop["box"]):
            continue  # a new region, or into a container (the thread) after the container
        now, prev = stop["box"], stop["previous"]
        if now["top"] >= prev["bottom"] - 2:
            continue  # below
        same_line = now["top"] < prev["bottom"] and prev["top"] < now["bottom"]
        centre, prev_centre = (now["left"] + now["right"]) / 2, (prev["left"] + prev["right"]) / 2
        onward = centre < prev_centre if rtl else centre > prev_centre
        if not (same_line and onward):
            problems.append(f"{stop['what']} {now} after {before['what']} {prev}")
    return problems


def _check_keyboard_walk(page: Any, regions: list[str], rtl: bool) -> list[str]:
    stops = _tab_through(page, regions)
    assert len(stops) > 10, stops
    unseen = [s["what"] for s in stops if not s["indicator"]]
    outside = [s["what"] for s in stops if s["region"] < 0]
    return ([f"no visible focus: {what}" for what in unseen]
            + [f"outside the known regions: {what}" for what in outside]
            + [f"out of order: {problem}" for problem in _out_of_order(stops, rtl)])


@pytest.mark.parametrize("locale", ["en", "ar"])
def test_tab_follows_the_reading_order_and_every_stop_shows_the_focus(
    browser: Any, web_server: WebServer, locale: str,
) -> None:
    world = make_world(web_server, locale=locale, conversations=3)
    conversation_id, _ = _conversation_with_email_and_api_messages(world)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale=locale)
    ctx.set_default_timeout(TIMEOUT)
    rtl = locale == "ar"
    problems: dict[str, list[str]] = {}
    try:
        page = ctx.new_page()
        page.goto(f"{world.server.url}/app/login?lang={locale}")
        page.locator("#email").fill(world.anna.email)
        page.locator("#password").fill(world.anna.password)
        page.locator("form button[type=submit]").click()
        page.wait_for_url("**/app/inbox**")

        page.goto(f"{world.server.url}/app/inbox?view=all")
        wait_live(page)
        problems["inbox"] = _check_keyboard_walk(
            page, [".skip-link", "#sidebar", "#list-region", "#main"], rtl)

        page.goto(f"{world.server.url}/app/conversations/{conversation_id}?view=all")
        wait_live(page)
        problems["conversation"] = _check_keyboard_walk(
            page, [".skip-link", "#sidebar", "#list-region", "#conv-head", ".conv-main",
                   "#contact-panel"], rtl)
    finally:
        ctx.close()
    found = [f"{name}: {line}" for name, lines in problems.items() for line in lines]
    assert not found, f"{len(found)} keyboard problems ({locale}):\n" + "\n".join(found)
