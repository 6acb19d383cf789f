"""The conversation view and the inbox list over HTTP, on both backends: the "Automatic"
badge and filter of conversations automatic mail opened, a forwarded mail's original
writer in the mail block, and To/Cc names in any script shown as written."""

from __future__ import annotations

import re
from pathlib import Path

from frontdesk.channels.email.service import receive_email
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import new_message_id
from tests.factories import Factory
from tests.integration.email.test_automatic_mail import as_written, encoded
from tests.web.test_email_web import a_mail, customer
from tests.web.test_web_http import MakeClient, browser_client, signed_in

__all__ = ["browser_client"]  # the fixture, shared with test_web_http

CORPUS = Path(__file__).parents[1] / "data" / "mail"


def row_of(page: str, conversation_id: int) -> str:
    found = re.search(rf'<li class="row[^"]*" id="row-{conversation_id}".*?</li>', page, re.S)
    assert found, page[:2000]
    return found.group(0)


async def test_conversations_automatic_mail_opened_carry_a_badge_and_can_be_filtered(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    alert, _ = await a_mail(runtime, address, sender=customer(), subject="CRITICAL: disk full",
                            headers={"Auto-Submitted": "auto-generated"})
    question, _ = await a_mail(runtime, address, sender=customer(), subject="A question")
    client, _ = await signed_in(browser_client, ws.admin)

    page = (await client.get("/app/inbox?view=all")).text
    assert "badge-automatic" in row_of(page, alert)
    assert "badge-automatic" not in row_of(page, question)
    assert re.search(r'<select name="automatic" id="filter-automatic">', page)
    only = (await client.get("/app/inbox?view=all&automatic=1")).text
    assert f'id="row-{alert}"' in only and f'id="row-{question}"' not in only
    people = (await client.get("/app/inbox?view=all&automatic=0")).text
    assert f'id="row-{question}"' in people and f'id="row-{alert}"' not in people
    assert re.search(r'<option value="0" selected>From people</option>', people)

    head = (await client.get(f"/app/conversations/{alert}")).text
    head = head[head.index('id="conv-head"'):head.index('id="conv-status"')]
    assert "Opened by automatic mail" in head and ">Automatic</span>" in head


async def test_the_mail_block_names_who_wrote_a_forwarded_original_and_when(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    raw = (CORPUS / "forwarded_inline_gmail.eml").read_bytes() \
        .replace(b"support@acme.test", address.encode()) \
        .replace(b"<corpus@customer.test>", new_message_id().encode())
    received = await receive_email(runtime, raw, inbox_id=None,
                                   envelope_recipients=[address], source="test")
    assert received.status == "stored"
    client, _ = await signed_in(browser_client, ws.admin)

    page = (await client.get(f"/app/conversations/{received.conversation_id}")).text
    assert ("Forwarded from Courier &lt;noreply@courier.test&gt;, "
            "Sun, Jan 14, 2024 at 9:00 AM") in page
    assert "<bdi>Delivery failed</bdi>" in page  # the original's subject


async def test_to_and_cc_names_in_arabic_chinese_and_cyrillic_read_as_written(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    layla, wei, olga = customer(), customer(), customer()
    raw = as_written(sender=customer(), to=f"{address}, {encoded('ليلى أحمد', layla)}",
                     cc=f"{encoded('王伟', wei)}, {encoded('Ольга Петрова', olga)}",
                     subject="Names")
    received = await receive_email(runtime, raw, inbox_id=None,
                                   envelope_recipients=[address], source="test")
    client, _ = await signed_in(browser_client, ws.admin)

    page = (await client.get(f"/app/conversations/{received.conversation_id}")).text
    assert f"ليلى أحمد &lt;{layla}&gt;" in page
    assert f"王伟 &lt;{wei}&gt;, Ольга Петрова &lt;{olga}&gt;" in page
    assert "=?utf-8?" not in page
