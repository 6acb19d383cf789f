"""An admin disables (archives) an inbox and enables it again: while disabled it takes no
new messages by any road (API channel 409, SMTP 550, IMAP not polled), and its
conversations stay readable and answerable so the team can finish its open work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiosmtplib
import httpx
import pytest
from sqlalchemy import select

from frontdesk.accounts.models import Role
from frontdesk.channels.email import imap_service
from frontdesk.channels.email.imap_models import ImapMailbox
from frontdesk.channels.email.models import OutboundEmail
from frontdesk.channels.email.smtp_server import SmtpServer
from frontdesk.core.events import EventType
from frontdesk.runtime import Runtime
from tests.apitools import assert_error
from tests.channels.email.mailmaker import make_mail
from tests.core.test_admin_events import events_of
from tests.dovecot import Dovecot
from tests.factories import Factory, unique
from tests.integration.email.smtp_tools import running_smtp_server


@pytest.fixture
async def smtp(runtime: Runtime) -> AsyncIterator[SmtpServer]:
    async with running_smtp_server(runtime) as server:
        yield server


async def rcpt_code(server: SmtpServer, sender: str, recipient: str) -> int:
    """What the server answers RCPT TO `recipient` with."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.bound_port, start_tls=False,
                             timeout=30)
    async with client:
        await client.ehlo()
        await client.mail(sender)
        try:
            code, _ = await client.rcpt(recipient)
        except aiosmtplib.SMTPRecipientRefused as refused:
            return refused.code
    return code


async def test_a_disabled_api_inbox_refuses_new_messages_and_keeps_its_conversations(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    ws = await factory.api_workspace()
    agent = await factory.api_member(ws, Role.AGENT)
    ids = await factory.conversation(ws)
    inbox_id = ids["inbox_id"]
    headers = ws.admin.headers

    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=headers, json={"disabled": True})
    assert r.status_code == 200, r.text
    assert r.json()["disabled_at"] is not None

    pushed = await api.post(f"/api/v1/inboxes/{inbox_id}/incoming", headers=headers, json={
        "external_id": unique("ext"), "contact": {"identifier": unique("c")},
        "content": "Anyone there?"})
    error = assert_error(pushed, 409, "inbox_disabled")
    assert "disabled" in error["message"]
    # Its conversations are still listed under it, readable and answerable.
    listed = (await api.get(f"/api/v1/conversations?inbox_id={inbox_id}",
                            headers=agent.headers)).json()["items"]
    assert [c["id"] for c in listed] == [ids["conversation_id"]]
    reply = await api.post(f"/api/v1/conversations/{ids['conversation_id']}/messages",
                           headers=agent.headers, json={"content": "We are on it."})
    assert reply.status_code == 201, reply.text
    seen = (await api.get("/api/v1/inboxes", headers=agent.headers)).json()
    assert [i["disabled_at"] is not None for i in seen] == [True]

    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=headers, json={"disabled": False})
    assert r.status_code == 200 and r.json()["disabled_at"] is None
    await factory.incoming(ws, inbox_id)

    events = await events_of(runtime, ws, EventType.INBOX_UPDATED)
    assert [e["data"]["changes"] for e in events] == [{"disabled": [False, True]},
                                                      {"disabled": [True, False]}]
    assert events[0]["data"]["inbox"]["disabled_at"] is not None
    # Disabling a disabled inbox changes nothing and announces nothing.
    await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=headers, json={"disabled": False})
    assert len(await events_of(runtime, ws, EventType.INBOX_UPDATED)) == 2


async def test_only_admins_disable_inboxes_of_their_own_workspace(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    ws = await factory.api_workspace()
    other = await factory.api_workspace()
    supervisor = await factory.api_member(ws, Role.SUPERVISOR)
    inbox_id = await factory.inbox(ws)
    assert_error(await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=supervisor.headers,
                                 json={"disabled": True}), 403)
    assert_error(await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=other.admin.headers,
                                 json={"disabled": True}), 404)
    await factory.incoming(ws, inbox_id)  # still taking messages


async def test_the_smtp_server_refuses_mail_for_a_disabled_inbox_but_replies_still_go_out(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, smtp: SmtpServer
) -> None:
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    sender = f"{unique('customer')}@customer.example"
    assert await rcpt_code(smtp, sender, address) == 250
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.bound_port, start_tls=False)
    async with client:
        await client.sendmail(sender, [address], make_mail(sender=sender, to=address))
    [conversation] = (await api.get(f"/api/v1/conversations?inbox_id={inbox_id}",
                                    headers=ws.admin.headers)).json()["items"]

    r = await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                        json={"disabled": True})
    assert r.status_code == 200, r.text
    assert await rcpt_code(smtp, sender, address) == 550
    assert await rcpt_code(smtp, sender, address.replace("@", "+c1.x@")) == 550

    # The team finishes its open work: the reply is queued for the relay as usual.
    reply = await api.post(f"/api/v1/conversations/{conversation['id']}/messages",
                           headers=ws.admin.headers, json={"content": "Refund is on its way."})
    assert reply.status_code == 201, reply.text
    message_id = reply.json()["id"]
    for _ in range(200):
        async with runtime.read_sessions() as session:
            queued = (await session.execute(select(OutboundEmail.id).where(
                OutboundEmail.message_id == message_id))).scalar_one_or_none()
        if queued is not None:
            break
        await asyncio.sleep(0.05)
    assert queued is not None, "the reply from the disabled inbox was not queued to go out"

    await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                    json={"disabled": False})
    assert await rcpt_code(smtp, sender, address) == 250


async def test_quarantined_mail_of_a_disabled_inbox_is_not_reprocessed_into_it(
    api: httpx.AsyncClient, factory: Factory, smtp: SmtpServer
) -> None:
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    sender = f"{unique('customer')}@customer.example"
    anonymous = f"To: {address}\r\nSubject: {unique('who')}\r\n\r\nno sender\r\n".encode()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.bound_port, start_tls=False)
    async with client:
        await client.sendmail(sender, [address], anonymous)
    [quarantined] = (await api.get("/api/v1/email/quarantine",
                                   headers=ws.admin.headers)).json()
    await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                    json={"disabled": True})
    assert_error(await api.post(f"/api/v1/email/quarantine/{quarantined['id']}/reprocess",
                                headers=ws.admin.headers), 409, "inbox_disabled")


async def test_imap_polling_stops_while_the_inbox_is_disabled(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, dovecot: Dovecot,
) -> None:
    ws = await factory.api_workspace()
    inbox_id, _address = await factory.email_inbox(ws)
    folder = dovecot.new_folder()
    r = await api.put(f"/api/v1/inboxes/{inbox_id}/imap", headers=ws.admin.headers, json={
        "host": dovecot.host, "port": dovecot.tls_port, "tls": "tls",
        "username": dovecot.user, "password": dovecot.password, "mailbox": folder,
        "enabled": True})
    assert r.status_code == 200, r.text
    async with runtime.read_sessions() as session:
        mailbox_id = (await session.execute(select(ImapMailbox.id).where(
            ImapMailbox.inbox_id == inbox_id))).scalar_one()

    async def polled_ids() -> set[int]:
        async with runtime.read_sessions() as session:
            return {row[0] for row in await imap_service.enabled_mailboxes(session)}

    assert mailbox_id in await polled_ids()
    await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                    json={"disabled": True})
    assert mailbox_id not in await polled_ids()
    await api.patch(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers,
                    json={"disabled": False})
    assert mailbox_id in await polled_ids()
