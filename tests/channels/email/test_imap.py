"""IMAP polling against a real Dovecot (tests/dovecot.py), on SQLite and PostgreSQL.

The pollers under test are the app's own (the embedded ones of the test server's
runtime): a PUT of the settings wakes them, as it does in `frontdesk serve`."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update

from frontdesk.accounts.models import Role
from frontdesk.channels.email import imap_service
from frontdesk.channels.email.imap_models import ImapMailbox
from frontdesk.channels.email.models import EmailRecord
from frontdesk.config import Settings
from frontdesk.core.secrets import secret_box
from frontdesk.runtime import Runtime
from tests.apitools import assert_error
from tests.channels.email.mailmaker import make_mail, new_message_id
from tests.dovecot import Dovecot
from tests.factories import Factory, Workspace, unique


@pytest.fixture
def imap(dovecot: Dovecot, settings: Settings) -> Iterator[Dovecot]:
    """The test server, trusted: its self-signed certificate is the pollers' extra CA
    (as FRONTDESK_IMAP_CA_FILE would make it for a server with a private CA)."""
    before = settings.imap_ca_file
    settings.imap_ca_file = dovecot.ca_file
    yield dovecot
    settings.imap_ca_file = before


def customer() -> str:
    return f"{unique('customer')}@customer.example"


async def configure(api: httpx.AsyncClient, ws: Workspace, inbox_id: int, server: Dovecot,
                    folder: str, **overrides: Any) -> dict[str, Any]:
    body = {"host": server.host, "port": server.tls_port, "tls": "tls",
            "username": server.user, "password": server.password, "mailbox": folder,
            "enabled": True, **overrides}
    r = await api.put(f"/api/v1/inboxes/{inbox_id}/imap", headers=ws.admin.headers, json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def state(api: httpx.AsyncClient, ws: Workspace, inbox_id: int) -> dict[str, Any]:
    r = await api.get(f"/api/v1/inboxes/{inbox_id}/imap", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def wait_for(api: httpx.AsyncClient, ws: Workspace, inbox_id: int,
                   ready: Callable[[dict[str, Any]], bool], seconds: float = 30.0
                   ) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    current: dict[str, Any] = {}
    while time.monotonic() < deadline:
        current = await state(api, ws, inbox_id)
        if ready(current):
            return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"the IMAP state did not get there in {seconds} s: {current}")


async def records(runtime: Runtime, inbox_id: int) -> list[EmailRecord]:
    async with runtime.read_sessions() as session:
        rows = await session.execute(select(EmailRecord).where(EmailRecord.inbox_id == inbox_id)
                                     .order_by(EmailRecord.message_id))
        return list(rows.scalars())


def seen(server: Dovecot, folder: str) -> dict[int, bool]:
    return {uid: "\\Seen" in flags for uid, flags in server.flags(folder).items()}


async def test_mail_in_the_mailbox_is_stored_once_in_the_right_conversation(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, imap: Dovecot,
) -> None:
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = imap.new_folder()
    sender = customer()
    first_id = new_message_id()
    first = make_mail(sender=sender, to=address, subject="Order 77 never came",
                      message_id=first_id)
    imap.append(first, folder)

    configured = await configure(api, ws, inbox_id, imap, folder)
    assert "password" not in configured
    done = await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 1)
    assert done["uidvalidity"] == imap.uidvalidity(folder)
    assert done["last_error"] is None and done["imported_count"] == 1

    # A reply to it joins its conversation; the same mail appended again (UID 3) is
    # recognised by its Message-ID and not stored twice.
    imap.append(make_mail(sender=sender, to=address, subject="Re: Order 77 never came",
                          in_reply_to=first_id, references=[first_id]), folder)
    imap.append(first, folder)
    await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 3)

    stored = await records(runtime, inbox_id)
    assert len(stored) == 2
    assert stored[0].header_message_id == first_id.strip("<>")
    assert stored[0].subject == "Order 77 never came"
    assert stored[1].conversation_id == stored[0].conversation_id
    assert all(r.source == "imap" for r in stored)
    assert seen(imap, folder) == {1: True, 2: True, 3: True}  # acknowledged after commit


async def test_a_restart_resumes_by_uid_even_after_more_than_a_day(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, imap: Dovecot,
) -> None:
    """Resuming by date loses the mail of an outage longer than the date window; by UID
    nothing is lost and nothing fetched twice. STARTTLS on the plain port here."""
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = imap.new_folder()
    for n in range(3):
        imap.append(make_mail(sender=customer(), to=address, subject=f"before {n}"), folder)
    await configure(api, ws, inbox_id, imap, folder, port=imap.port, tls="starttls")
    await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 3)

    await configure(api, ws, inbox_id, imap, folder, port=imap.port, tls="starttls",
                    enabled=False)
    await wait_for(api, ws, inbox_id, lambda s: not s["polling"])
    # While stopped: mail that says (in its Date header and on the server) it came three
    # and two days ago, then mail of today.
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    for n in range(4):
        when = long_ago + dt.timedelta(days=n // 2)
        imap.append(make_mail(sender=customer(), to=address, subject=f"while down {n}",
                              headers={"X-Sent": when.isoformat()}), folder, when=when)
    imap.append(make_mail(sender=customer(), to=address, subject="today"), folder)

    await configure(api, ws, inbox_id, imap, folder, port=imap.port, tls="starttls",
                    enabled=True)
    done = await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 8)
    assert done["imported_count"] == 8
    subjects = sorted(r.subject for r in await records(runtime, inbox_id))
    assert subjects == sorted([f"before {n}" for n in range(3)]
                              + [f"while down {n}" for n in range(4)] + ["today"])
    assert all(seen(imap, folder).values())


async def test_a_mailbox_of_more_than_a_thousand_mails_is_caught_up(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, imap: Dovecot,
) -> None:
    """aioimaplib overflows its stack on an answer of ~1000 lines read at once: new mail is
    listed with one SEARCH line and sized in windows. (The same mail 1,100 times: stored
    once, the rest recognised as duplicates and acknowledged.)"""
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = imap.new_folder()
    imap.append_many([make_mail(sender=customer(), to=address, message_id="<same@x.example>",
                                subject="again and again")] * 1100, folder)
    await configure(api, ws, inbox_id, imap, folder)
    done = await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 1100, seconds=120)
    assert done["last_error"] is None
    assert len(await records(runtime, inbox_id)) == 1


async def test_a_new_uidvalidity_starts_over_and_stores_nothing_twice(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, imap: Dovecot,
) -> None:
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = imap.new_folder()
    kept = [make_mail(sender=customer(), to=address, subject=f"kept {n}") for n in range(2)]
    for raw in kept:
        imap.append(raw, folder)
    await configure(api, ws, inbox_id, imap, folder)
    before = await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 2)
    await configure(api, ws, inbox_id, imap, folder, enabled=False)
    await wait_for(api, ws, inbox_id, lambda s: not s["polling"])

    # The server renumbers the folder (as after a restore): same mails, new UIDs, a new
    # UIDVALIDITY; and one mail nobody has seen yet, at UID 3.
    imap.recreate_folder(folder)
    for raw in kept:
        imap.append(raw, folder)
    imap.append(make_mail(sender=customer(), to=address, subject="new"), folder)
    assert imap.uidvalidity(folder) != before["uidvalidity"]

    await configure(api, ws, inbox_id, imap, folder, enabled=True)
    after = await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 3
                           and s["uidvalidity"] == imap.uidvalidity(folder))
    assert after["last_error"] is None
    assert sorted(r.subject for r in await records(runtime, inbox_id)) == [
        "kept 0", "kept 1", "new"]
    assert all(seen(imap, folder).values())  # the duplicates are acknowledged too


async def test_mail_over_the_size_limit_is_refused_before_it_is_downloaded(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, imap: Dovecot,
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "email_max_message_bytes", 20_000)
    server = imap.new_user()  # its own sessions in the server's log
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = server.new_folder()
    big = make_mail(sender=customer(), to=address, subject="huge",
                    attachments=[("scan.bin", "application/octet-stream", b"\x01" * 60_000)])
    assert len(big) > 60_000
    server.append(big, folder)
    server.append(make_mail(sender=customer(), to=address, subject="small"), folder)

    await configure(api, ws, inbox_id, server, folder)
    done = await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 2)
    assert done["refused_count"] == 1
    assert "UID 1" in done["last_refused"] and "over the limit of 20000" in done["last_refused"]
    assert [r.subject for r in await records(runtime, inbox_id)] == ["small"]
    assert seen(server, folder) == {1: False, 2: True}  # the big one is left for a person

    # Proof that it was not downloaded: the server's own account of every session of
    # this user (it logs the body bytes each one fetched) once the poller has logged out.
    await configure(api, ws, inbox_id, server, folder, enabled=False)
    await wait_for(api, ws, inbox_id, lambda s: not s["polling"])
    deadline = time.monotonic() + 10
    fetched: list[int] = []
    while time.monotonic() < deadline:
        fetched = [int(m) for line in server.log_of(server.user)
                   for m in re.findall(r"body_bytes=(\d+)", line)]
        if any(fetched):
            break
        await asyncio.sleep(0.1)
    assert 0 < sum(fetched) < 20_000, fetched
    async with runtime.read_sessions() as session:
        logged = (await session.execute(text(
            "SELECT count(*) FROM activity_log WHERE action = 'email.refused_oversize' "
            "AND subject_id = :inbox"), {"inbox": inbox_id})).scalar_one()
    assert logged == 1


async def test_a_mail_is_not_flagged_when_storing_it_fails(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, imap: Dovecot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database refuses (injected in front of the real store); the mail stays unread
    on the server and the progress does not move past it; the sender's next mail waits
    behind it (order), another sender's is stored meanwhile. Once the store works, all is
    stored, once."""
    broken = {"on": True}
    real = runtime.imap_pollers._deliver

    async def store_or_fail(inbox_id: int, raw: bytes) -> Any:
        if broken["on"] and b"Subject: unlucky" in raw:
            raise OSError("database unreachable (injected)")
        return await real(inbox_id, raw)

    monkeypatch.setattr(runtime.imap_pollers, "_deliver", store_or_fail)
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = imap.new_folder()
    unlucky_sender = customer()
    imap.append(make_mail(sender=customer(), to=address, subject="lucky"), folder)
    imap.append(make_mail(sender=unlucky_sender, to=address, subject="unlucky"), folder)
    imap.append(make_mail(sender=unlucky_sender, to=address, subject="after"), folder)
    imap.append(make_mail(sender=customer(), to=address, subject="other"), folder)

    await configure(api, ws, inbox_id, imap, folder)
    failed = await wait_for(api, ws, inbox_id, lambda s: s["last_error"] is not None)
    assert "injected" in failed["last_error"]
    assert failed["last_uid"] == 1  # the one before it is stored and acknowledged
    assert seen(imap, folder) == {1: True, 2: False, 3: False, 4: True}
    assert sorted(r.subject for r in await records(runtime, inbox_id)) == ["lucky", "other"]

    broken["on"] = False  # the database is back: the backoff retries
    done = await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 4)
    assert done["last_error"] is None
    assert sorted(r.subject for r in await records(runtime, inbox_id)) == [
        "after", "lucky", "other", "unlucky"]
    assert all(seen(imap, folder).values())


async def test_idle_delivers_a_new_mail_promptly(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, imap: Dovecot,
    settings: Settings,
) -> None:
    # The poller only looks again on its own every min(idle, lease/3) seconds: promptness
    # can only come from the server's IDLE push.
    assert min(settings.imap_idle_seconds, settings.imap_lease_seconds / 3) >= 30
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = imap.new_folder()
    await configure(api, ws, inbox_id, imap, folder)
    await wait_for(api, ws, inbox_id, lambda s: s["last_polled_at"] is not None)
    await asyncio.sleep(0.3)  # into IDLE
    started = time.monotonic()
    imap.append(make_mail(sender=customer(), to=address, subject="are you there?"), folder)
    await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 1, seconds=10)
    elapsed = time.monotonic() - started
    assert elapsed < 3, f"IDLE took {elapsed:.2f} s"
    assert [r.subject for r in await records(runtime, inbox_id)] == ["are you there?"]


async def test_the_password_is_encrypted_at_rest_and_never_shown_or_logged(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, imap: Dovecot,
    settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = imap.new_user()
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = server.new_folder()
    server.append(make_mail(sender=customer(), to=address), folder)
    put = await configure(api, ws, inbox_id, server, folder)
    await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 1)  # it signed in with it
    got = await api.get(f"/api/v1/inboxes/{inbox_id}/imap", headers=ws.admin.headers)
    for answer in (str(put), got.text):
        assert server.password not in answer and "password" not in answer

    async with runtime.read_sessions() as session:
        raw = (await session.execute(text(
            "SELECT password_encrypted FROM imap_mailboxes WHERE inbox_id = :inbox"),
            {"inbox": inbox_id})).scalar_one()
        activity = (await session.execute(text(
            "SELECT changes FROM activity_log WHERE subject_id = :inbox AND action LIKE "
            "'inbox.imap%'"), {"inbox": inbox_id})).scalars().all()
    assert server.password not in raw and server.password.encode().hex() not in raw
    assert raw.startswith("gAAAAA")  # a Fernet token
    assert secret_box(settings).decrypt(raw) == server.password
    assert activity and all(server.password not in str(c) for c in activity)
    assert not [r for r in caplog.records if server.password in r.getMessage()]


async def test_connection_errors_are_recorded_and_retried_never_raised(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, imap: Dovecot,
) -> None:
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = imap.new_folder()
    imap.append(make_mail(sender=customer(), to=address), folder)
    await configure(api, ws, inbox_id, imap, folder, password="wrong-password")
    failed = await wait_for(api, ws, inbox_id, lambda s: s["last_error"] is not None)
    assert "refused the sign-in" in failed["last_error"]
    assert "wrong-password" not in failed["last_error"]
    failed = await wait_for(api, ws, inbox_id,
                            lambda s: s["last_error_at"] != failed["last_error_at"])
    assert failed["last_uid"] == 0

    # Nothing listens there: refused connection, recorded the same way.
    await configure(api, ws, inbox_id, imap, folder, port=9)
    refused = await wait_for(api, ws, inbox_id, lambda s: s["last_error"] is not None)
    assert "cannot connect" in refused["last_error"]

    # Fixed settings (the stored password is kept when none is sent): it recovers.
    r = await api.put(f"/api/v1/inboxes/{inbox_id}/imap", headers=ws.admin.headers,
                      json={"host": imap.host, "port": imap.tls_port, "tls": "tls",
                            "username": imap.user, "password": imap.password,
                            "mailbox": folder})
    assert r.status_code == 200, r.text
    r = await api.put(f"/api/v1/inboxes/{inbox_id}/imap", headers=ws.admin.headers,
                      json={"host": imap.host, "port": imap.tls_port, "tls": "tls",
                            "username": imap.user, "mailbox": folder})
    assert r.status_code == 200, r.text
    done = await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 1)
    assert done["last_error"] is None and done["imported_count"] == 1


@pytest.mark.parametrize("mode", ["tls", "starttls"])
async def test_an_untrusted_certificate_is_refused_before_the_password_is_sent(
    mode: str, api: httpx.AsyncClient, factory: Factory, dovecot: Dovecot,
    settings: Settings,
) -> None:
    assert settings.imap_ca_file is None  # the test server's self-signed cert: not trusted
    server = dovecot.new_user()
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = server.new_folder()
    server.append(make_mail(sender=customer(), to=address), folder)
    port = server.tls_port if mode == "tls" else server.port

    def sign_ins() -> list[str]:  # every sign-in of this user the server saw, failed or not
        return [line for line in (server.home / "dovecot.log").read_text().splitlines()
                if f"user=<{server.user}>" in line]

    before = sign_ins()  # the test's own sessions (the folder, the mail)
    await configure(api, ws, inbox_id, server, folder, tls=mode, port=port)
    failed = await wait_for(api, ws, inbox_id, lambda s: s["last_error"] is not None)
    assert "CERTIFICATE_VERIFY_FAILED" in failed["last_error"], failed["last_error"]
    assert failed["last_uid"] == 0
    await wait_for(api, ws, inbox_id, lambda s: s["last_error_at"] != failed["last_error_at"])
    assert sign_ins() == before  # the password never went to a server we could not verify


async def test_the_address_is_checked_again_at_every_connection(
    api: httpx.AsyncClient, factory: Factory, imap: Dovecot, settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host accepted once may point inside later (DNS changes): the poller checks the
    address it connects to, every time."""
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = imap.new_folder()
    imap.append(make_mail(sender=customer(), to=address), folder)
    await configure(api, ws, inbox_id, imap, folder, enabled=False)
    monkeypatch.setattr(settings, "imap_allow_private", False)
    async with factory.runtime.sessions() as session:  # enabled behind the PUT's check
        await session.execute(update(ImapMailbox).where(ImapMailbox.inbox_id == inbox_id)
                              .values(enabled=True, config_version=ImapMailbox.config_version + 1))
        await session.commit()
    factory.runtime.imap_pollers.wake()
    refused = await wait_for(api, ws, inbox_id, lambda s: s["last_error"] is not None)
    assert "internal networks are refused" in refused["last_error"]
    assert refused["last_uid"] == 0 and seen(imap, folder) == {1: False}


async def test_a_mail_can_be_moved_instead_of_flagged(
    api: httpx.AsyncClient, factory: Factory, runtime: Runtime, imap: Dovecot,
) -> None:
    ws = await factory.api_workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder, done_folder = imap.new_folder(), imap.new_folder()
    imap.append(make_mail(sender=customer(), to=address, subject="move me"), folder)
    await configure(api, ws, inbox_id, imap, folder, after_import="move", move_to=done_folder)
    await wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 1)
    assert imap.count(folder) == 0 and imap.count(done_folder) == 1
    assert [r.subject for r in await records(runtime, inbox_id)] == ["move me"]


# --- the settings API ---------------------------------------------------------------------


async def test_the_settings_api_refuses_what_it_must(
    api: httpx.AsyncClient, factory: Factory, settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = await factory.api_workspace()
    inbox_id, _ = await factory.email_inbox(ws)
    body = {"host": "127.0.0.1", "port": 993, "tls": "tls", "username": "u",
            "password": "p", "mailbox": "INBOX", "enabled": False}
    url = f"/api/v1/inboxes/{inbox_id}/imap"

    assert_error(await api.get(url, headers=ws.admin.headers), 404, "imap_not_configured")
    api_inbox = await factory.inbox(ws)
    assert_error(await api.put(f"/api/v1/inboxes/{api_inbox}/imap", headers=ws.admin.headers,
                               json=body), 422, "not_an_email_inbox")
    agent = await factory.api_member(ws, Role.AGENT)
    assert_error(await api.put(url, headers=agent.headers, json=body), 403)
    assert_error(await api.put(url, headers=ws.admin.headers,
                               json={**body, "password": None}), 422)
    for bad in ({"tls": "none"}, {"host": "imap.example.com:993"}, {"host": "a b"},
                {"username": "x\r\nA1 LOGOUT"}, {"port": 0}, {"workspace_id": 1},
                {"after_import": "move"}):
        assert_error(await api.put(url, headers=ws.admin.headers, json={**body, **bad}), 422)

    # Internal addresses only where the installation allows them (like webhooks).
    monkeypatch.setattr(settings, "imap_allow_private", False)
    for host in ("127.0.0.1", "169.254.169.254", "10.1.2.3", "::1", "localhost"):
        r = await api.put(url, headers=ws.admin.headers, json={**body, "host": host})
        error = assert_error(r, 422, "unsafe_host")
        assert error["details"][0]["field"] == "body.host"
    assert_error(await api.get(url, headers=ws.admin.headers), 404, "imap_not_configured")


async def test_one_lease_per_mailbox(runtime: Runtime, api: httpx.AsyncClient,
                                     factory: Factory) -> None:
    """Two processes never poll one mailbox: the lease is taken by one UPDATE."""
    ws = await factory.api_workspace()
    inbox_id, _ = await factory.email_inbox(ws)
    r = await api.put(f"/api/v1/inboxes/{inbox_id}/imap", headers=ws.admin.headers,
                      json={"host": "127.0.0.1", "port": 9, "tls": "tls", "username": "u",
                            "password": "p", "enabled": False})
    assert r.status_code == 200
    async with runtime.sessions() as session:
        mailbox_id = (await session.execute(select(ImapMailbox.id).where(
            ImapMailbox.inbox_id == inbox_id))).scalar_one()
        # Disabled: nobody may take it.
        assert not await imap_service.claim_lease(session, mailbox_id, "a", 60)
        await session.execute(update(ImapMailbox).where(ImapMailbox.id == mailbox_id)
                              .values(enabled=True))
        assert await imap_service.claim_lease(session, mailbox_id, "a", 60)
        assert not await imap_service.claim_lease(session, mailbox_id, "b", 60)
        assert await imap_service.claim_lease(session, mailbox_id, "a", 60)  # renewal
        await session.execute(update(ImapMailbox).where(ImapMailbox.id == mailbox_id).values(
            lease_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
        assert await imap_service.claim_lease(session, mailbox_id, "b", 60)  # ran out
        count = (await session.execute(select(func.count()).select_from(ImapMailbox).where(
            ImapMailbox.id == mailbox_id, ImapMailbox.lease_owner == "b"))).scalar_one()
        assert count == 1
        await session.rollback()  # leave it disabled: the app's pollers must not try it



def test_lanes_keep_each_sender_and_each_thread_in_order() -> None:
    from frontdesk.channels.email.imap_poller import _lanes

    a1 = make_mail(sender="a@x.example", to="s@y.example", message_id="<a1@x>")
    b1 = make_mail(sender="B <b@x.example>", to="s@y.example", message_id="<b1@x>")
    c_reply_to_a = make_mail(sender="c@x.example", to="s@y.example", in_reply_to="<a1@x>",
                             references=["<a1@x>"])
    a2 = make_mail(sender="A@X.example", to="s@y.example")
    d1 = make_mail(sender="d@x.example", to="s@y.example")
    lanes = _lanes([(1, a1), (2, b1), (3, c_reply_to_a), (4, a2), (5, d1)])
    assert sorted([uid for uid, _ in lane] for lane in lanes) == [[1, 3, 4], [2], [5]]
