"""Automatic mail through the real SMTP server, on both databases: it joins its conversation
without reopening it or touching its waiting time, activity or unread state (a bounce shows
the failed delivery and turns the conversation unread); a conversation it opens is flagged
automatic until the customer writes; names in To/Cc are stored decoded; and a cached route
never stores mail in an inbox that gave its address away."""

from __future__ import annotations

from email.header import Header
from email.utils import format_datetime, getaddresses
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy import delete, insert, select

from frontdesk.channels.email.models import SupportAddress
from frontdesk.channels.email.service import route_recipients
from frontdesk.channels.email.smtp_server import SmtpServer
from frontdesk.db.base import utcnow
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail, new_message_id
from tests.factories import Factory, Workspace
from tests.integration.email.smtp_tools import RecordingRelay
from tests.integration.email.test_smtp_intake import (
    agent_reply,
    customer,
    mail_in,
    relay,
    server,
)
from tests.integration.email.test_smtp_loop import bounce_of, send, stored_messages

__all__ = ["relay", "server"]  # the fixtures, shared with test_smtp_intake


def encoded(name: str, address: str) -> str:
    """An address as mail clients write a non-ASCII name: one RFC 2047 word."""
    return f"{Header(name, 'utf-8').encode(maxlinelen=0)} <{address}>"


def as_written(*, sender: str, to: str, cc: str = "", subject: str) -> bytes:
    """A mail with its header lines as given, unfolded. (The standard library's generator
    folds long address lists itself, and can drop the space between two encoded words it
    splits a name into: "Ольга Петрова" would arrive as "ОльгаПетрова".)"""
    lines = [f"From: {sender}", f"To: {to}", *([f"Cc: {cc}"] if cc else []),
             f"Subject: {subject}", f"Date: {format_datetime(utcnow())}",
             f"Message-ID: {new_message_id()}", "MIME-Version: 1.0",
             'Content-Type: text/plain; charset="utf-8"', "", "Hello."]
    return "\r\n".join(lines).encode("ascii")


async def conversation(api: httpx.AsyncClient, ws: Workspace, conversation_id: int
                       ) -> dict[str, Any]:
    r = await api.get(f"/api/v1/conversations/{conversation_id}", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def thread(api: httpx.AsyncClient, ws: Workspace, conversation_id: int
                 ) -> list[dict[str, Any]]:
    r = await api.get(f"/api/v1/conversations/{conversation_id}/messages",
                      headers=ws.admin.headers)
    return list(r.json()["items"])


async def resolve_and_read(api: httpx.AsyncClient, ws: Workspace, conversation_id: int) -> None:
    r = await api.post(f"/api/v1/conversations/{conversation_id}/status",
                       headers=ws.admin.headers, json={"status": "resolved"})
    assert r.status_code == 200, r.text
    r = await api.post(f"/api/v1/conversations/{conversation_id}/read", headers=ws.admin.headers)
    assert r.status_code == 200, r.text


async def answered_and_resolved(
        server: SmtpServer, relay: RecordingRelay, factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient, subject: str) -> tuple[Workspace, str, str, int, Any]:
    """A customer's mail, the agent's reply to it, the conversation resolved and read:
    (workspace, support address, customer, conversation id, our reply as sent)."""
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender = customer()
    await mail_in(server, make_mail(sender=sender, to=address, subject=subject),
                  sender, address)
    [first] = await stored_messages(api, ws)
    conversation_id = first["conversation_id"]
    ours = (await agent_reply(api, runtime, relay, ws, conversation_id, sender)).message
    await resolve_and_read(api, ws, conversation_id)
    return ws, address, sender, conversation_id, ours


async def test_an_out_of_office_reply_joins_a_resolved_conversation_without_reopening_it(
        server: SmtpServer, relay: RecordingRelay, factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient) -> None:
    ws, address, sender, conversation_id, ours = await answered_and_resolved(
        server, relay, factory, runtime, api, "Broken widget")
    before = await conversation(api, ws, conversation_id)
    assert before["status"] == "resolved" and before["waiting_since"] is None
    assert before["unread"] is False and before["automatic"] is False

    await mail_in(server, make_mail(
        sender=sender, to=address, subject="Automatic reply: Re: Broken widget",
        in_reply_to=ours["Message-ID"], body="I am out of the office until Monday.",
        headers={"Auto-Submitted": "auto-replied"}), sender, address)
    after = await conversation(api, ws, conversation_id)
    assert (await thread(api, ws, conversation_id))[-1]["content"].startswith(
        "I am out of the office")
    # Stored in the thread, and nothing else: not reopened, not waiting, not moved up the
    # activity sort, not unread, and not flagged (a person opened this conversation).
    for name in ("status", "waiting_since", "last_activity_at", "first_response_at",
                 "unread", "automatic"):
        assert after[name] == before[name], name

    # The customer, back in the office, writes: that reopens it as always.
    await mail_in(server, make_mail(
        sender=sender, to=address, subject="Re: Broken widget", in_reply_to=ours["Message-ID"],
        body="Back now; the widget is still broken."), sender, address)
    again = await conversation(api, ws, conversation_id)
    assert again["status"] == "open" and again["waiting_since"] is not None
    assert again["unread"] is True and again["last_activity_at"] > before["last_activity_at"]


async def test_a_bounce_of_our_reply_marks_it_failed_and_the_conversation_unread_not_open(
        server: SmtpServer, relay: RecordingRelay, factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient) -> None:
    ws, address, sender, conversation_id, ours = await answered_and_resolved(
        server, relay, factory, runtime, api, "Refund")
    before = await conversation(api, ws, conversation_id)

    code, _ = await send(server, bounce_of(ours["Message-ID"], to=address,
                                           failed_recipient=sender), "", [address])
    assert code == 250
    after = await conversation(api, ws, conversation_id)
    assert after["status"] == "resolved" and after["waiting_since"] is None
    assert after["last_activity_at"] == before["last_activity_at"]
    assert after["unread"] is True  # an agent must see the failed delivery
    reply = next(m for m in await thread(api, ws, conversation_id)
                 if m["message_type"] == "outgoing")
    assert reply["delivery_status"] == "failed" and sender in reply["delivery_error"]


async def test_a_conversation_automatic_mail_opens_is_flagged_until_the_customer_writes(
        server: SmtpServer, factory: Factory, runtime: Runtime, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    zabbix, person, away = customer("zabbix"), customer("person"), customer("away")
    alert_id = "<alert-1@zabbix.example>"
    await mail_in(server, make_mail(
        sender=f"Zabbix <{zabbix}>", to=address, subject="Problem: High CPU on db02",
        message_id=alert_id, headers={"Auto-Submitted": "auto-generated"}), zabbix, address)
    await mail_in(server, make_mail(
        sender=away, to=address, subject="Out of office: your newsletter",
        headers={"Auto-Submitted": "auto-replied"}), away, address)
    await mail_in(server, make_mail(sender=person, to=address, subject="A question"),
                  person, address)

    async def listed(query: str) -> dict[str, dict[str, Any]]:
        r = await api.get(f"/api/v1/conversations{query}", headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        return {c["subject"]: c for c in r.json()["items"]}

    everything = await listed("")
    assert {s: c["automatic"] for s, c in everything.items()} == {
        "Problem: High CPU on db02": True, "Out of office: your newsletter": True,
        "A question": False}
    # Still work: the alert is an open conversation waiting for an agent.
    alert = everything["Problem: High CPU on db02"]
    assert alert["status"] == "open" and alert["waiting_since"] is not None
    assert set(await listed("?automatic=true")) == {"Problem: High CPU on db02",
                                                     "Out of office: your newsletter"}
    assert set(await listed("?automatic=false")) == {"A question"}

    # A person at the monitoring address answers the alert: no longer automatic.
    await mail_in(server, make_mail(
        sender=zabbix, to=address, subject="Re: Problem: High CPU on db02",
        in_reply_to=alert_id, body="This is the admin: can you look at db02?"),
        zabbix, address)
    assert set(await listed("?automatic=true")) == {"Out of office: your newsletter"}
    assert (await conversation(api, ws, alert["id"]))["automatic"] is False


async def test_to_and_cc_names_in_any_script_are_stored_decoded(
        server: SmtpServer, factory: Factory, api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender, layla, wei, olga, lee = (customer("s"), customer("layla"), customer("wei"),
                                     customer("olga"), customer("lee"))
    raw = as_written(sender=sender, to=f"{address}, {encoded('ليلى أحمد', layla)}",
                     cc=f"{encoded('王伟', wei)}, {encoded('Ольга Петрова', olga)}, "
                        f'"Lee, Ann" <{lee}>', subject="Names")
    assert b"=?utf-8?" in raw
    await mail_in(server, raw, sender, address)
    [message] = await stored_messages(api, ws)
    r = await api.get(f"/api/v1/messages/{message['id']}/email", headers=ws.admin.headers)
    record = r.json()
    assert record["to_addresses"] == [address, f"ليلى أحمد <{layla}>"]
    assert record["cc_addresses"] == [f"王伟 <{wei}>", f"Ольга Петрова <{olga}>",
                                      f'"Lee, Ann" <{lee}>']
    # Still an address list a parser reads back the same (reply-all parses the record).
    assert getaddresses(record["cc_addresses"]) == [
        ("王伟", wei), ("Ольга Петрова", olga), ("Lee, Ann", lee)]


async def test_our_reply_all_stores_the_names_as_written_and_encodes_them_in_the_headers(
        server: SmtpServer, relay: RecordingRelay, factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender, wei, olga = customer("s"), customer("wei"), customer("olga")
    raw = as_written(sender=encoded("ليلى أحمد", sender), to=address,
                     cc=f"{encoded('王伟', wei)}, {encoded('Ольга Петрова', olga)}",
                     subject="Names")
    await mail_in(server, raw, sender, address)
    [first] = await stored_messages(api, ws)
    sent = await agent_reply(api, runtime, relay, ws, first["conversation_id"], sender)
    # On the wire: RFC 2047 words, which read back as the names.
    headers = sent.raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in headers and "王伟".encode() not in headers
    assert getaddresses([sent.message["To"]]) == [("ليلى أحمد", sender)]
    assert sorted(getaddresses([sent.message["Cc"]])) == sorted(
        [("王伟", wei), ("Ольга Петрова", olga)])
    # In our record of it: as written.
    reply = [m for m in await thread(api, ws, first["conversation_id"])
             if m["message_type"] == "outgoing"][-1]
    record = (await api.get(f"/api/v1/messages/{reply['id']}/email",
                            headers=ws.admin.headers)).json()
    assert record["to_addresses"] == [f"ليلى أحمد <{sender}>"]
    assert sorted(record["cc_addresses"]) == sorted([f"王伟 <{wei}>",
                                                     f"Ольга Петрова <{olga}>"])


async def test_mail_routed_by_a_stale_cached_route_lands_in_the_inbox_now_owning_the_address(
        server: SmtpServer, factory: Factory, runtime: Runtime, api: httpx.AsyncClient
) -> None:
    ws_a, ws_b = await factory.workspace(), await factory.workspace()
    inbox_a, address = await factory.email_inbox(ws_a)
    inbox_b, _ = await factory.email_inbox(ws_b)
    sender = customer()
    # This process routes `address` to inbox A and remembers it.
    [cached] = await route_recipients(runtime, [address])
    assert cached.inbox_id == inbox_a
    # Another process (an admin's request there) removes the address from inbox A and
    # workspace B claims it: this process's cache is not told.
    async with runtime.sessions() as session, session.begin():
        await session.execute(delete(SupportAddress).where(SupportAddress.address == address))
        await session.execute(insert(SupportAddress).values(
            workspace_id=ws_b.id, inbox_id=inbox_b, address=address, created_at=utcnow()))
    [still] = await route_recipients(runtime, [address])
    assert still.inbox_id == inbox_a  # the stale route, for up to ROUTE_CACHE_SECONDS

    await mail_in(server, make_mail(sender=sender, to=address, subject="For B"),
                  sender, address)
    assert await stored_messages(api, ws_a) == []
    [landed] = await stored_messages(api, ws_b)
    r = await api.get(f"/api/v1/messages/{landed['id']}/email", headers=ws_b.admin.headers)
    assert r.json()["subject"] == "For B" and r.json()["support_address"] == address
    [fresh] = await route_recipients(runtime, [address])
    assert fresh.inbox_id == inbox_b  # the stale route was dropped


async def test_mail_to_an_address_that_moved_away_to_nowhere_is_refused_for_a_retry(
        server: SmtpServer, factory: Factory, runtime: Runtime, api: httpx.AsyncClient
) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    await route_recipients(runtime, [address])  # cached
    async with runtime.sessions() as session, session.begin():
        await session.execute(delete(SupportAddress).where(SupportAddress.address == address))
    sender = customer()
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(server, make_mail(sender=sender, to=address, subject="Lost"), sender,
                   [address])
    assert refused.value.code == 451  # the sender retries, and RCPT then says 550
    assert await stored_messages(api, ws) == []
    async with runtime.read_sessions() as session:
        assert (await session.execute(select(SupportAddress.id).where(
            SupportAddress.address == address))).first() is None
