"""The outbound relay's security, against a real relay (aiosmtpd in this process) with a
certificate made here: STARTTLS and implicit TLS with AUTH LOGIN/PLAIN, a certificate we
do not trust, a wrong password. A relay that cannot be used as configured keeps the reply
pending (tried again) with a reason on its outbound record, and never the password in a
log line."""

from __future__ import annotations

import base64
import logging
import ssl
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from frontdesk.channels.email.models import OutboundEmail
from frontdesk.channels.email.service import receive_email
from frontdesk.db.base import utcnow
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail
from tests.channels.email.test_smtp_tls import Certificate, self_signed
from tests.factories import Factory, unique
from tests.integration.email.smtp_tools import Login, RecordingRelay
from tests.integration.email.test_smtp_loop import delivery_of, sent_to, wait_for_outbound

# aiosmtpd counts only STARTTLS as TLS for AUTH, so a relay with implicit TLS is made with
# auth_require_tls off, about which it warns: the connection is TLS all the same.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

USERNAME = "frontdesk-relay-user"
PASSWORD = "s3cret-Relay-Passw0rd"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Certificate, Certificate]:
    """The relay's certificate (its own CA, given to Frontdesk in FRONTDESK_SMTP_RELAY_CA_FILE),
    and another one that nothing trusts."""
    directory = tmp_path_factory.mktemp("relay-tls")
    return self_signed(directory, "relay"), self_signed(directory, "stranger")


def server_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert, certificate.key)
    return context


async def queued_reply(factory: Factory, runtime: Runtime, api: httpx.AsyncClient) -> tuple[
        int, str]:
    """An agent's reply to a customer's mail, queued for the relay: (its id, the customer)."""
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    customer = f"{unique('customer')}@customer.example"
    received = await receive_email(runtime, make_mail(sender=customer, to=address),
                                   inbox_id=None, envelope_recipients=[address],
                                   source="test")
    r = await api.post(f"/api/v1/conversations/{received.conversation_id}/messages",
                       headers=ws.admin.headers, json={"content": "We are on it."})
    assert r.status_code == 201, r.text
    reply_id = int(r.json()["id"])
    await wait_for_outbound(runtime, reply_id)
    return reply_id, customer


def use_relay(monkeypatch: pytest.MonkeyPatch, runtime: Runtime, relay: RecordingRelay, *,
              security: str, ca_file: Path | None, password: str = PASSWORD) -> None:
    for name, value in {"smtp_relay_host": "127.0.0.1", "smtp_relay_port": relay.port,
                        "smtp_relay_security": security, "smtp_relay_ca_file": ca_file,
                        "smtp_relay_username": USERNAME, "smtp_relay_password": password,
                        "smtp_relay_timeout_seconds": 10.0}.items():
        monkeypatch.setattr(runtime.settings, name, value)


async def outbound_of(runtime: Runtime, message_id: int) -> OutboundEmail:
    async with runtime.read_sessions() as session:
        return (await session.execute(select(OutboundEmail).where(
            OutboundEmail.message_id == message_id))).scalar_one()


async def send_due(runtime: Runtime) -> None:
    """Send what is due (the session's database may hold other tests' pending mail too)."""
    for _ in range(20):
        if not await runtime.email_sender.send_due():
            return


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
async def test_a_reply_goes_out_over_starttls_signed_in_with_the_configured_account(
        mechanism: str, certificates: tuple[Certificate, Certificate], factory: Factory,
        runtime: Runtime, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    relay_certificate, _ = certificates
    reply_id, customer = await queued_reply(factory, runtime, api)
    with RecordingRelay(starttls=server_context(relay_certificate),
                        credentials=(USERNAME, PASSWORD), mechanisms=[mechanism]) as relay:
        use_relay(monkeypatch, runtime, relay, security="starttls",
                  ca_file=relay_certificate.cert)
        captured = await sent_to(runtime, relay, customer)
    # Signed in once per connection, after STARTTLS, with the mechanism the relay offered.
    assert set(relay.logins) == {Login(mechanism, USERNAME, PASSWORD, encrypted=True)}
    assert captured.message["Subject"] == "Re: Help please"
    status, error, _ = await delivery_of(runtime, reply_id)
    assert (status, error) == ("sent", None)
    assert (await outbound_of(runtime, reply_id)).status == "sent"


async def test_a_reply_goes_out_over_implicit_tls(
        certificates: tuple[Certificate, Certificate], factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    relay_certificate, _ = certificates
    reply_id, customer = await queued_reply(factory, runtime, api)
    with RecordingRelay(implicit_tls=server_context(relay_certificate),
                        credentials=(USERNAME, PASSWORD)) as relay:
        use_relay(monkeypatch, runtime, relay, security="tls", ca_file=relay_certificate.cert)
        await sent_to(runtime, relay, customer)
    assert relay.logins and all(login.encrypted and login.password == PASSWORD
                                for login in relay.logins)
    status, _, _ = await delivery_of(runtime, reply_id)
    assert status == "sent"


def assert_never_logged(caplog: pytest.LogCaptureFixture, password: str) -> None:
    """In no log line of ours or of the SMTP client (aiosmtpd's "mail.log" is the relay's),
    neither as such nor in the base64 of AUTH PLAIN / LOGIN."""
    secrets = {password, base64.b64encode(password.encode()).decode(),
               base64.b64encode(f"\0{USERNAME}\0{password}".encode()).decode()}
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert any("outbound mail" in r.getMessage() for r in ours)  # the failure was logged
    for record in ours:
        text = record.getMessage() + (record.exc_text or "")
        assert not any(secret in text for secret in secrets), record.name


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_a_relay_whose_certificate_is_not_trusted_is_refused_and_the_reply_waits(
        security: str, certificates: tuple[Certificate, Certificate], factory: Factory,
        runtime: Runtime, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    trusted, stranger = certificates
    reply_id, customer = await queued_reply(factory, runtime, api)
    caplog.set_level(logging.DEBUG)
    context = server_context(stranger)
    with RecordingRelay(starttls=context if security == "starttls" else None,
                        implicit_tls=context if security == "tls" else None,
                        credentials=(USERNAME, PASSWORD)) as relay:
        # Frontdesk trusts the system's CAs and `trusted`: not the relay's certificate.
        use_relay(monkeypatch, runtime, relay, security=security, ca_file=trusted.cert)
        await send_due(runtime)
    assert [m for m in relay.received if customer in m.rcpt_tos] == []
    assert relay.logins == []  # the password never left
    status, error, _ = await delivery_of(runtime, reply_id)
    assert status == "pending" and error is None  # tried again later, not given up
    outbound = await outbound_of(runtime, reply_id)
    assert outbound.status == "pending" and outbound.attempts == 1
    assert outbound.last_error is not None
    assert "certificate is not trusted" in outbound.last_error
    assert "FRONTDESK_SMTP_RELAY_CA_FILE" in outbound.last_error
    assert_never_logged(caplog, PASSWORD)


async def test_an_unreadable_ca_file_is_named_in_the_reason(
        certificates: tuple[Certificate, Certificate], factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    relay_certificate, _ = certificates
    garbage = tmp_path / "not-a-bundle.pem"
    garbage.write_text("not a certificate")
    reply_id, _customer = await queued_reply(factory, runtime, api)
    with RecordingRelay(starttls=server_context(relay_certificate),
                        credentials=(USERNAME, PASSWORD)) as relay:
        for ca_file in (tmp_path / "missing.pem", garbage):
            use_relay(monkeypatch, runtime, relay, security="starttls", ca_file=ca_file)
            async with runtime.sessions() as session, session.begin():
                await session.execute(update(OutboundEmail)
                                      .where(OutboundEmail.message_id == reply_id)
                                      .values(next_attempt_at=utcnow()))
            await send_due(runtime)
            outbound = await outbound_of(runtime, reply_id)
            assert outbound.status == "pending" and outbound.last_error is not None
            assert outbound.last_error.startswith(
                f"FRONTDESK_SMTP_RELAY_CA_FILE {ca_file} cannot be used: "), outbound.last_error
    assert relay.logins == []


async def test_a_relay_without_starttls_is_refused_before_the_password_goes_in_the_clear(
        factory: Factory, runtime: Runtime, api: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reply_id, customer = await queued_reply(factory, runtime, api)
    with RecordingRelay() as relay:  # plain SMTP, no STARTTLS offered
        use_relay(monkeypatch, runtime, relay, security="starttls", ca_file=None)
        await send_due(runtime)
    assert relay.logins == [] and [m for m in relay.received if customer in m.rcpt_tos] == []
    status, _, _ = await delivery_of(runtime, reply_id)
    assert status == "pending"
    outbound = await outbound_of(runtime, reply_id)
    assert outbound.last_error is not None and "STARTTLS" in outbound.last_error


async def test_a_wrong_password_is_a_clear_reason_and_never_logged(
        certificates: tuple[Certificate, Certificate], factory: Factory, runtime: Runtime,
        api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    relay_certificate, _ = certificates
    wrong = "wr0ng-Passw0rd-" + unique("x")
    reply_id, customer = await queued_reply(factory, runtime, api)
    caplog.set_level(logging.DEBUG)
    with RecordingRelay(starttls=server_context(relay_certificate),
                        credentials=(USERNAME, PASSWORD), mechanisms=["PLAIN"]) as relay:
        use_relay(monkeypatch, runtime, relay, security="starttls",
                  ca_file=relay_certificate.cert, password=wrong)
        await send_due(runtime)
    assert Login("PLAIN", USERNAME, wrong, encrypted=True) in relay.logins
    assert [m for m in relay.received if customer in m.rcpt_tos] == []
    status, _, _ = await delivery_of(runtime, reply_id)
    assert status == "pending"  # the installation's settings, not the mail: tried again
    outbound = await outbound_of(runtime, reply_id)
    assert outbound.last_error is not None
    assert "refused the sign-in" in outbound.last_error and USERNAME in outbound.last_error
    assert "535" in outbound.last_error and wrong not in outbound.last_error
    assert_never_logged(caplog, wrong)
