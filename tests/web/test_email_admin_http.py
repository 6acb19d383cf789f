"""E-mail in the admin screens over HTTP, on both backends: e-mail inboxes created and
edited, IMAP settings, the quarantine; admins only, CSRF on every form, another
workspace's ids 404. What a form did is checked through the REST API or the database."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from frontdesk.accounts.models import Role
from frontdesk.channels.email.imap_models import ImapMailbox
from frontdesk.channels.email.service import ReceivedEmail, receive_email
from frontdesk.runtime import Runtime
from tests.channels.email import test_imap
from tests.channels.email.mailmaker import make_mail
from tests.dovecot import Dovecot
from tests.factories import Factory, Workspace, unique
from tests.web import test_admin_and_contacts_http as admin_http
from tests.web.test_admin_and_contacts_http import MakeClient, open_browser

browser_client = admin_http.browser_client  # the signed-in web sessions of those tests
imap = test_imap.imap  # the private Dovecot, its certificate trusted

IMAP_FORM = {"host": "1.1.1.1", "port": "993", "tls": "tls", "username": "support@imap.test",
             "password": "imap-secret", "mailbox": "INBOX", "after_import": "seen"}


async def _quarantined(runtime: Runtime, address: str, raw: bytes = b"\r\n\r\n") -> int:
    got = await receive_email(runtime, raw, inbox_id=None, envelope_recipients=[address],
                              source="test")
    assert got.status == "quarantined" and got.quarantine_id, got
    return got.quarantine_id


async def _rate_limited(runtime: Runtime, address: str, sender: str,
                        monkeypatch: pytest.MonkeyPatch) -> ReceivedEmail:
    monkeypatch.setattr(runtime.settings, "email_rate_limit_count", 1)
    results = [await receive_email(runtime, make_mail(sender=sender, to=address, body=f"#{n}",
                                                      subject=f"storm {n}"),
                                   inbox_id=None, envelope_recipients=[address], source="test")
               for n in range(2)]
    monkeypatch.undo()
    assert [r.status for r in results] == ["stored", "quarantined"]
    return results[1]


Forms = list[tuple[str, dict[str, str]]]


def _routes(inbox_id: int, quarantine_id: int) -> tuple[list[str], Forms]:
    """The new pages and forms (each form with a body an admin could send)."""
    pages = [f"/app/admin/inboxes/{inbox_id}", "/app/admin/quarantine",
             f"/app/admin/quarantine/{quarantine_id}",
             f"/app/admin/quarantine/{quarantine_id}/raw"]
    forms = [("/app/admin/inboxes/email", {"name": "Sneaky", "address": "sneaky@example.com"}),
             (f"/app/admin/inboxes/{inbox_id}/email",
              {"address": "sneaky@example.com", "from_name": "Sneaky"}),
             (f"/app/admin/inboxes/{inbox_id}/imap", IMAP_FORM),
             (f"/app/admin/quarantine/{quarantine_id}/reprocess", {}),
             (f"/app/admin/inboxes/{inbox_id}/addresses", {"address": "sneaky@example.com"})]
    return pages, forms


async def _inbox_names(api: httpx.AsyncClient, ws: Workspace) -> set[str]:
    return {i["name"] for i in (await api.get("/api/v1/inboxes", headers=ws.admin.headers)).json()}


async def test_only_admins_open_and_use_the_email_screens(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient, runtime: Runtime
) -> None:
    ws = await factory.workspace()
    inbox_id, address = await factory.email_inbox(ws, from_name="Support")
    quarantine_id = await _quarantined(runtime, address)
    pages, forms = _routes(inbox_id, quarantine_id)
    admin = await open_browser(browser_client, ws.admin)
    for path in pages:
        assert (await admin.get(path)).status_code == 200, path
    assert 'href="/app/admin/quarantine"' in (await admin.get("/app/admin/inboxes")).text
    for role in (Role.SUPERVISOR, Role.AGENT):
        person = await open_browser(browser_client, await factory.member(ws, role))
        for path in pages:
            r = await person.get(path)
            assert r.status_code == 403, f"{role} {path}"
            assert "This page is for admins." in r.text
        for path, data in forms:
            assert (await person.post(path, **data)).status_code == 403, f"{role} {path}"
        nav = (await person.get("/app/inbox")).text
        assert 'href="/app/admin/quarantine"' not in nav
    # Nothing changed: no inbox, settings untouched, no IMAP mailbox, still quarantined.
    assert "Sneaky" not in await _inbox_names(api, ws)
    inbox = (await api.get(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers)).json()
    assert inbox["settings"]["email"] == address and inbox["settings"]["from_name"] == "Support"
    r = await api.get(f"/api/v1/inboxes/{inbox_id}/imap", headers=ws.admin.headers)
    assert r.status_code == 404
    listed = (await api.get("/api/v1/email/quarantine", headers=ws.admin.headers)).json()
    assert [row["id"] for row in listed] == [quarantine_id]


async def test_every_email_form_needs_the_csrf_token(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient, runtime: Runtime
) -> None:
    ws = await factory.workspace()
    inbox_id, address = await factory.email_inbox(ws)
    _, forms = _routes(inbox_id, await _quarantined(runtime, address))
    admin = await open_browser(browser_client, ws.admin)
    for path, data in forms:
        for token in ({}, {"csrf_token": "x" * 43}):
            r = await admin.client.post(path, data={**data, **token})
            assert r.status_code == 403, path
            assert "did not come from Frontdesk" in r.text
    assert "Sneaky" not in await _inbox_names(api, ws)
    r = await api.get(f"/api/v1/inboxes/{inbox_id}/imap", headers=ws.admin.headers)
    assert r.status_code == 404


async def test_another_workspaces_inbox_and_quarantine_answer_404(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient, runtime: Runtime
) -> None:
    ws, other = await factory.workspace(), await factory.workspace()
    inbox_id, address = await factory.email_inbox(other)
    pages, forms = _routes(inbox_id, await _quarantined(runtime, address))
    intruder = await open_browser(browser_client, ws.admin)
    for path in pages[:1] + pages[2:]:
        assert (await intruder.get(path)).status_code == 404, path
    assert address not in (await intruder.get("/app/admin/quarantine")).text
    for path, data in forms[1:]:
        assert (await intruder.post(path, **data)).status_code == 404, path
    inbox = (await api.get(f"/api/v1/inboxes/{inbox_id}", headers=other.admin.headers)).json()
    assert inbox["settings"]["email"] == address
    listed = (await api.get("/api/v1/email/quarantine", headers=other.admin.headers)).json()
    assert len(listed) == 1


async def test_an_admin_creates_and_edits_an_email_inbox(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = await factory.workspace()
    admin = await open_browser(browser_client, ws.admin)
    address = f"{unique('help')}@example.com"
    r = await admin.post("/app/admin/inboxes/email", name="Help", address=address,
                         from_name="ACME Help", signature="ACME Inc.", acknowledge="1",
                         acknowledgement="We got your mail.")
    assert r.status_code == 303
    page = await admin.get(r.headers["location"])
    assert "The e-mail inbox is created." in page.text
    # Where to forward it: this app runs no SMTP server (the tests' settings), so IMAP;
    # with one bound to every address, the host this page was reached by.
    assert address in page.text and "runs no SMTP server" in page.text
    monkeypatch.setattr(runtime.settings, "smtp_port", 2525)
    monkeypatch.setattr(runtime.settings, "smtp_host", "0.0.0.0")
    page = await admin.get(r.headers["location"])
    monkeypatch.undo()
    assert 'id="smtp-endpoint">frontdesk.test:2525</code>' in page.text
    inboxes = (await api.get("/api/v1/inboxes", headers=ws.admin.headers)).json()
    inbox = next(i for i in inboxes if i["name"] == "Help")
    assert r.headers["location"] == f"/app/admin/inboxes/{inbox['id']}"
    assert inbox["channel"] == "email" and inbox["settings"] == {
        "email": address, "from_name": "ACME Help", "signature": "ACME Inc.",
        "auto_acknowledgement": "We got your mail."}
    listing = (await admin.get("/app/admin/inboxes")).text
    assert f'href="/app/admin/inboxes/{inbox["id"]}"' in listing and address in listing

    # Refusals come back as reasons on the page.
    taken = await admin.follow("/app/admin/inboxes/email", name="Again", address=address)
    assert "Another inbox already receives mail for that address." in taken.text
    bad = await admin.follow("/app/admin/inboxes/email", name="Plus",
                             address="help+x@example.com")
    assert "Enter a valid e-mail address, without" in bad.text
    silent = await admin.follow("/app/admin/inboxes/email", name="Silent",
                                address=f"{unique('silent')}@example.com", acknowledge="1")
    assert "Write the acknowledgement, or switch it off." in silent.text
    assert {"Again", "Plus", "Silent"}.isdisjoint(await _inbox_names(api, ws))

    url = f"/app/admin/inboxes/{inbox['id']}/email"
    new_address = f"{unique('desk')}@example.com"
    page = await admin.follow(url, address=new_address, from_name="ACME Desk",
                              signature="", acknowledge="", acknowledgement="ignored")
    assert "The e-mail settings are saved." in page.text
    assert address in page.text and new_address in page.text  # both receive
    got = (await api.get(f"/api/v1/inboxes/{inbox['id']}", headers=ws.admin.headers)).json()
    assert got["settings"] == {"email": new_address, "from_name": "ACME Desk", "signature": "",
                               "auto_acknowledgement": ""}
    injected = await admin.follow(url, address=new_address,
                                  from_name="ACME\r\nBcc: victim@example.com")
    assert "each on one line" in injected.text
    empty_ack = await admin.follow(url, address=new_address, from_name="ACME Desk",
                                   acknowledge="1", acknowledgement=" ")
    assert "Write the acknowledgement, or switch it off." in empty_ack.text
    got = (await api.get(f"/api/v1/inboxes/{inbox['id']}", headers=ws.admin.headers)).json()
    assert got["settings"]["from_name"] == "ACME Desk"
    # An API inbox has no e-mail page: its row on the list is where it is managed.
    api_inbox = await factory.inbox(ws)
    r = await admin.get(f"/app/admin/inboxes/{api_inbox}")
    assert r.status_code == 303 and r.headers["location"].endswith(f"#inbox-{api_inbox}")
    r = await admin.post(f"/app/admin/inboxes/{api_inbox}/email", address=new_address,
                         from_name="X")
    assert r.status_code == 303


async def test_an_admin_adds_promotes_and_removes_an_inboxs_addresses(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
) -> None:
    ws, other = await factory.workspace(), await factory.workspace()
    inbox_id, primary = await factory.email_inbox(ws)
    _, theirs = await factory.email_inbox(other)
    admin = await open_browser(browser_client, ws.admin)
    base = f"/app/admin/inboxes/{inbox_id}/addresses"

    async def addresses() -> list[str]:
        got = await api.get(f"/api/v1/inboxes/{inbox_id}", headers=ws.admin.headers)
        return list(got.json()["addresses"])

    sales = f"{unique('sales')}@example.com"
    page = await admin.follow(base, address=sales.upper())
    assert "The address is added: the inbox receives mail sent to it." in page.text
    assert f'<code dir="ltr">{sales}</code>' in page.text
    assert f'action="{base}/remove"' in page.text and f'value="{sales}"' in page.text
    assert await addresses() == [primary, sales]
    got = await receive_email(runtime, make_mail(sender=f"{unique('c')}@customer.example",
                                                 to=sales),
                              inbox_id=None, envelope_recipients=[sales], source="test")
    assert got.inbox_id == inbox_id
    # The SMTP hint says what the server offers (STARTTLS with a certificate).
    assert "offers STARTTLS when FRONTDESK_SMTP_TLS_CERT" not in page.text  # no SMTP here
    taken = await admin.follow(base, address=theirs)
    assert "Another inbox already receives mail for that address." in taken.text
    plus = await admin.follow(base, address="help+x@example.com")
    assert "Enter a valid e-mail address, without" in plus.text
    kept = await admin.follow(f"{base}/remove", address=primary)
    assert "The primary address cannot be removed: make another address primary first." \
        in kept.text
    assert await addresses() == [primary, sales]

    page = await admin.follow(f"{base}/primary", address=sales)
    assert "The primary address is changed." in page.text
    assert await addresses() == [sales, primary]
    page = await admin.follow(f"{base}/remove", address=primary)
    assert "The address is removed: mail sent to it is refused now." in page.text
    assert await addresses() == [sales]
    # An address the inbox does not receive at is no address of this page.
    for change in ("remove", "primary"):
        assert (await admin.post(f"{base}/{change}", address=theirs)).status_code == 404


async def test_the_smtp_hint_tells_that_starttls_is_offered_with_a_certificate(
    browser_client: MakeClient, factory: Factory, runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = await factory.workspace()
    inbox_id, _ = await factory.email_inbox(ws)
    admin = await open_browser(browser_client, ws.admin)
    monkeypatch.setattr(runtime.settings, "smtp_port", 2525)
    page = await admin.get(f"/app/admin/inboxes/{inbox_id}")
    assert "offers STARTTLS when FRONTDESK_SMTP_TLS_CERT and FRONTDESK_SMTP_TLS_KEY are set" \
        in page.text
    assert "offers no TLS" not in page.text


async def test_imap_settings_are_saved_checked_and_their_state_shown(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = await factory.workspace()
    inbox_id, _ = await factory.email_inbox(ws)
    admin = await open_browser(browser_client, ws.admin)
    url = f"/app/admin/inboxes/{inbox_id}/imap"
    first = await admin.follow(url, **{**IMAP_FORM, "password": ""})
    assert "The first IMAP settings need the password." in first.text
    bad_host = await admin.follow(url, **{**IMAP_FORM, "host": "imap://x.example:993"})
    assert "Enter the IMAP server's host name" in bad_host.text
    move = await admin.follow(url, **{**IMAP_FORM, "after_import": "move", "move_to": "INBOX"})
    assert "Moving needs a folder other than the mailbox." in move.text
    monkeypatch.setattr(runtime.settings, "imap_allow_private", False)
    unsafe = await admin.follow(url, **{**IMAP_FORM, "host": "127.0.0.1"})
    monkeypatch.undo()
    assert "That IMAP server is not allowed: its address is private or internal" in unsafe.text
    assert (await api.get(f"/api/v1/inboxes/{inbox_id}/imap",
                          headers=ws.admin.headers)).status_code == 404

    page = await admin.follow(url, **IMAP_FORM)  # not enabled: nothing connects to it
    assert "The IMAP settings are saved." in page.text
    state = (await api.get(f"/api/v1/inboxes/{inbox_id}/imap", headers=ws.admin.headers)).json()
    assert (state["host"], state["port"], state["username"], state["enabled"]) == (
        "1.1.1.1", 993, "support@imap.test", False)
    assert 'id="imap-state"' in page.text and "imap-secret" not in page.text
    async with runtime.read_sessions() as session:
        stored = await session.scalar(select(ImapMailbox.password_encrypted)
                                      .where(ImapMailbox.inbox_id == inbox_id))
    # A blank password keeps the stored one; the rest changes.
    page = await admin.follow(url, **{**IMAP_FORM, "password": "", "mailbox": "Support",
                                      "after_import": "move", "move_to": "Done"})
    assert "The IMAP settings are saved." in page.text
    async with runtime.read_sessions() as session:
        mailbox = (await session.execute(select(ImapMailbox)
                                         .where(ImapMailbox.inbox_id == inbox_id))).scalar_one()
    assert mailbox.password_encrypted == stored
    assert (mailbox.mailbox, mailbox.after_import, mailbox.move_to) == ("Support", "move", "Done")
    # The state the poller wrote is what the page shows.
    async with runtime.sessions() as session, session.begin():
        row = (await session.execute(select(ImapMailbox)
                                     .where(ImapMailbox.inbox_id == inbox_id))).scalar_one()
        row.last_error, row.uidvalidity, row.last_uid = "sign-in refused: AUTHFAILED", 77, 41
        row.refused_count, row.last_refused = 1, "UID 40 of 'Support' is 99 bytes, over..."
    page = await admin.get(f"/app/admin/inboxes/{inbox_id}")
    for shown in ("sign-in refused: AUTHFAILED", "77 / 41", "UID 40 of"):
        assert shown in page.text.replace("&#39;", "'"), shown


async def test_the_quarantine_lists_shows_downloads_and_reprocesses(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    broken = await _quarantined(runtime, address)
    sender = f"{unique('storm')}@customer.example"
    limited = await _rate_limited(runtime, address, sender, monkeypatch)
    admin = await open_browser(browser_client, ws.admin)

    listing = (await admin.get("/app/admin/quarantine")).text
    assert f'id="quarantined-{broken}"' in listing and "rate_limited" in listing
    assert sender in listing  # the envelope sender (the broken one has none: "Unknown")
    view = await admin.get(f"/app/admin/quarantine/{limited.quarantine_id}")
    assert "storm 1" in view.text and sender in view.text
    raw = await admin.get(f"/app/admin/quarantine/{limited.quarantine_id}/raw")
    assert raw.headers["content-disposition"].startswith("attachment")
    assert raw.headers["x-content-type-options"] == "nosniff"
    assert raw.headers["content-type"] == "application/octet-stream"
    assert b"storm 1" in raw.content

    still = await admin.follow(f"/app/admin/quarantine/{broken}/reprocess")
    assert "it still cannot be stored" in still.text
    stored = await admin.follow(f"/app/admin/quarantine/{limited.quarantine_id}/reprocess")
    assert "Re-processed: the mail is a message now." in stored.text
    links = [c["id"] for c in (await api.get("/api/v1/conversations",
                                              headers=ws.admin.headers)).json()["items"]]
    assert any(f'href="/app/conversations/{c}"' in stored.text for c in links)
    again = await admin.follow(f"/app/admin/quarantine/{limited.quarantine_id}/reprocess")
    assert "This mail was already re-processed." in again.text
    listed = (await api.get("/api/v1/email/quarantine", headers=ws.admin.headers)).json()
    assert [row["id"] for row in listed] == [broken]
    assert f'id="quarantined-{limited.quarantine_id}"' not in (
        await admin.get("/app/admin/quarantine")).text
    assert f'id="quarantined-{limited.quarantine_id}"' in (
        await admin.get("/app/admin/quarantine?all=1")).text


async def test_imap_settings_from_the_form_fetch_from_a_real_dovecot(
    browser_client: MakeClient, factory: Factory, api: httpx.AsyncClient, imap: Dovecot,
) -> None:
    ws = await factory.workspace()
    inbox_id, address = await factory.email_inbox(ws)
    folder = imap.new_folder()
    imap.append(make_mail(sender=f"{unique('c')}@customer.example", to=address,
                          subject="Fetched by IMAP", body="Hello from Dovecot"), folder)
    admin = await open_browser(browser_client, ws.admin)
    page = await admin.follow(f"/app/admin/inboxes/{inbox_id}/imap", host=imap.host,
                              port=str(imap.tls_port), tls="tls", username=imap.user,
                              password=imap.password, mailbox=folder, after_import="seen",
                              enabled="1")
    assert "The IMAP settings are saved." in page.text
    done = await test_imap.wait_for(api, ws, inbox_id, lambda s: s["last_uid"] == 1)
    assert done["last_error"] is None and done["imported_count"] == 1
    page = await admin.get(f"/app/admin/inboxes/{inbox_id}")
    assert f"{done['uidvalidity']} / 1" in page.text and "Never" not in page.text
    assert imap.password not in page.text
    listed = (await api.get("/api/v1/conversations", headers=ws.admin.headers)).json()
    assert any(c.get("subject") == "Fetched by IMAP" for c in listed["items"]), listed
