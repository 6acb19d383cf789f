"""An e-mail conversation in a real browser: the customer's quoted history is folded and
opens on its toggle, the formatted mail shows in its sandboxed frame, the attachment is
listed with its download link, and a file chosen in the composer becomes a chip."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from frontdesk.channels.email.service import receive_email
from tests.channels.email.mailmaker import make_mail
from tests.factories import unique
from tests.web.conftest import World, sign_in

pytestmark = pytest.mark.browser

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00"
       b"\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05"
       b"\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


BODY = ("The replacement works, thank you.\n\n"
        "On Mon, 2 Nov 2026 at 10:00, Support <support@example.com> wrote:\n"
        "> We shipped a replacement today.\n> Kind regards\n")


def test_quoted_history_folds_and_the_attachment_is_listed(context: Any, world: World,
                                                           tmp_path: Any) -> None:
    address = f"{unique('support')}@{unique('mail').lower()}.example.com"
    with world.api() as api:
        r = api.post("/api/v1/inboxes", json={"name": unique("Mail"), "channel": "email",
                                               "email": address})
        assert r.status_code == 201, r.text
    raw = make_mail(sender="Ann Lee <ann.lee@customer.example>", to=address,
                    cc=["bob@customer.example"], subject="Replacement", body=BODY,
                    html="<p>The replacement <b>works</b>, thank you.</p>"
                         '<img src="cid:photo@x" alt="photo" width="1" height="1">'
                         "<blockquote>We shipped a replacement today.</blockquote>",
                    inline_images=[("photo@x", "image/png", PNG)],
                    attachments=[("receipt.pdf", "application/pdf", b"%PDF-1.4 receipt")])
    runtime = world.server.runtime
    received = world.server.run(lambda: receive_email(
        runtime, raw, inbox_id=None, envelope_recipients=[address], source="test"))
    assert received.status == "stored"

    page = context.new_page()
    sign_in(page, world, world.anna)
    page.goto(f"{world.server.url}/app/conversations/{received.conversation_id}"
              "?view=all&status=any")
    message = page.locator(f"#msg-{received.message_id}")
    expect(message.locator(".msg-content")).to_have_text("The replacement works, thank you.")
    expect(message.locator(".mail-headers")).to_contain_text("bob@customer.example")

    quoted = message.locator(".mail-quoted")
    expect(quoted).to_be_hidden()  # folded
    message.get_by_text("Show quoted text").click()
    expect(quoted).to_be_visible()
    expect(quoted).to_contain_text("We shipped a replacement today.")
    message.get_by_text("Show quoted text").click()
    expect(quoted).to_be_hidden()

    link = message.locator(".attachments a", has_text="receipt.pdf")
    expect(link).to_have_attribute("href", f"/app/messages/{received.message_id}/attachments/2")
    expect(message.locator(".attachments")).to_contain_text("16 bytes")

    # The formatted mail: in a frame that runs nothing, loaded from the session's route.
    message.get_by_text("Show the formatted mail").click()
    frame = message.locator("iframe")
    expect(frame).to_have_attribute("sandbox", "")
    inside = message.frame_locator("iframe")
    expect(inside.locator("b")).to_have_text("works")
    # Its cid: picture shows (embedded: the sandboxed frame sends no session cookie).
    expect(inside.locator("img")).to_have_js_property("complete", True)
    assert inside.locator("img").evaluate("img => img.naturalWidth") == 1

    # A file chosen in the composer is uploaded and shown as a chip.
    upload = tmp_path / "steps.txt"
    upload.write_text("1. unplug\n2. plug in\n")
    page.locator("#composer input[type=file]").set_input_files(str(upload))
    chip = page.locator("#upload-chips .upload-chip")
    expect(chip).to_contain_text("steps.txt")
    page.locator("#composer-text").fill("Here are the steps.")
    page.locator("#composer").get_by_role("button", name="Send").click()
    sent = page.locator(".msg-outgoing", has_text="Here are the steps.")
    expect(sent.locator(".attachments")).to_contain_text("steps.txt")
    expect(chip).to_have_count(0)
