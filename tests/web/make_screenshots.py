"""Screenshots of the agent workspace on the demo data, for docs/screenshots/ and the README.

    make screenshots          (or: python tests/web/make_screenshots.py [OUT_DIR])

Starts `frontdesk demo` + `frontdesk serve` on a scratch data directory and a free port,
drives Debian's Chromium through Playwright, and writes PNGs in English and Arabic: the
inbox, a conversation (with a second agent's presence showing), the contact sidebar, the
contact page, the admin's members screen, and the conversation on a phone. Chinese and
Arabic text needs fonts-noto-cjk / fonts-noto-core.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
PASSWORD = "frontdesk-demo"
ADMIN = "admin@demo.frontdesk.test"
SECOND = "anna@demo.frontdesk.test"
CLI = [sys.executable, "-c", "from frontdesk.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sign_in(page: Any, base: str, email: str, locale: str) -> None:
    page.goto(f"{base}/app/login?lang={locale}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/app/inbox**")
    current = page.locator("#ui-locale").input_value()
    if current != locale:
        page.select_option("#ui-locale", locale)
        page.wait_for_load_state("networkidle")


def shoot(base: str, out: Path) -> list[Path]:
    written: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for locale in ("en", "ar"):
            ctx = browser.new_context(viewport={"width": 1440, "height": 900},
                                      device_scale_factor=1)
            other = browser.new_context(viewport={"width": 1440, "height": 900})
            page, second = ctx.new_page(), other.new_page()
            _sign_in(page, base, ADMIN, locale)
            _sign_in(second, base, SECOND, locale)
            page.goto(f"{base}/app/inbox?view=all&status=open")
            page.wait_for_selector('#live-status[data-state="live"]')
            page.locator("#rows li.row").nth(1).locator(".row-link").focus()
            page.keyboard.press("j")
            page.keyboard.press("k")
            target = out / f"inbox-{locale}.png"
            page.screenshot(path=str(target))
            written.append(target)

            row = page.locator("#rows li.row", has_text="Emily Carter")
            href = row.locator(".row-link").get_attribute("href")
            second.goto(f"{base}{href}")
            second.wait_for_selector('#live-status[data-state="live"]')
            page.goto(f"{base}{href}")
            page.wait_for_selector("#conversation")
            page.locator("#presence:not(:empty)").wait_for(timeout=10000)
            page.get_by_label("Message" if locale == "en" else "الرسالة", exact=True).fill(
                "Happy to help, Emily! The refund is confirmed." if locale == "en"
                else "يسعدنا مساعدتك يا إميلي! تم تأكيد استرداد المبلغ.")
            page.evaluate("document.activeElement.blur()")
            target = out / f"conversation-{locale}.png"
            page.screenshot(path=str(target))
            written.append(target)

            target = out / f"contact-{locale}.png"
            panel = page.locator("#contact-panel").bounding_box()
            last = page.locator("#contact-panel .side-section").last.bounding_box()
            assert panel and last
            page.screenshot(path=str(target), clip={
                "x": panel["x"], "y": panel["y"], "width": panel["width"],
                "height": last["y"] + last["height"] - panel["y"] + 20})
            written.append(target)

            contact_href = page.locator("#contact-panel .contact-page-link").get_attribute("href")
            page.goto(f"{base}{contact_href}")
            page.wait_for_selector(".timeline")
            target = out / f"contact-page-{locale}.png"
            page.screenshot(path=str(target))
            written.append(target)
            page.goto(f"{base}/app/admin/users")
            page.wait_for_selector(".data-table")
            target = out / f"admin-users-{locale}.png"
            page.screenshot(path=str(target))
            written.append(target)

            phone = browser.new_context(viewport={"width": 390, "height": 844},
                                        device_scale_factor=2, is_mobile=True, has_touch=True)
            mobile = phone.new_page()
            _sign_in(mobile, base, ADMIN, locale)
            mobile.goto(f"{base}{href}")
            mobile.wait_for_selector("#conversation")
            target = out / f"conversation-phone-{locale}.png"
            mobile.screenshot(path=str(target))
            written.append(target)
            for c in (ctx, other, phone):
                c.close()
        browser.close()
    return written


def _earlier_conversation(base: str, env: dict[str, str]) -> None:
    """Give Emily an earlier, resolved conversation in a second inbox, so the contact
    sidebar shows a customer's history across channels."""
    made = subprocess.run([*CLI, "admin", "create-token", "--workspace", "Demo", "--email", ADMIN,
                           "--name", "screenshots"], env=env, check=True, capture_output=True,
                          text=True)
    headers = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as api:
        inbox = api.post("/api/v1/inboxes", json={"name": "Mobile app", "channel": "api"}).json()
        ids = api.post(f"/api/v1/inboxes/{inbox['id']}/incoming", json={
            "external_id": "shots-1", "contact": {"identifier": "cust-1001"},
            "content": "Do you ship to Canada? I'd like to order two more.",
        }).json()
        cid = ids["conversation_id"]
        api.post(f"/api/v1/conversations/{cid}/messages",
                 json={"content": "Yes, we do: 5-7 days by standard post."})
        api.post(f"/api/v1/conversations/{cid}/status", json={"status": "resolved"})


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="frontdesk-shots-") as data:
        env = {**os.environ, "FRONTDESK_DATA_DIR": data, "FRONTDESK_DATABASE_URL": ""}
        subprocess.run([*CLI, "demo"], env=env, check=True, capture_output=True)
        port = _free_port()
        server = subprocess.Popen([*CLI, "serve", "--port", str(port), "--log-level", "warning"],
                                  env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            _earlier_conversation(base, env)
            for path in shoot(base, out):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        finally:
            server.terminate()
            server.wait(timeout=15)


if __name__ == "__main__":
    main()
