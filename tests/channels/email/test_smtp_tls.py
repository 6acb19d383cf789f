"""STARTTLS on the inbound SMTP server, with a self-signed certificate made here: offered
and accepted when a certificate is configured, plain delivery still taken unless TLS is
required (then 530 before STARTTLS), and bad settings one sentence at start-up."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from frontdesk.channels.email.smtp_server import (
    SmtpServer,
    SmtpTlsSettingsError,
    smtp_tls_context,
)
from frontdesk.config import Settings
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail
from tests.factories import Factory, Workspace, unique
from tests.processes import free_port


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    pem: bytes  # the certificate, which a client trusts as its own CA


def self_signed(directory: Path, name: str = "smtp") -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(pem)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Certificate(cert_path, key_path, pem)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


def with_tls(settings: Settings, certificate: Certificate, *, required: bool = False) -> Settings:
    return settings.model_copy(update={"smtp_tls_cert": certificate.cert,
                                       "smtp_tls_key": certificate.key,
                                       "smtp_require_tls": required})


async def started(runtime: Runtime, settings: Settings) -> SmtpServer:
    server = SmtpServer(runtime, "127.0.0.1", free_port(),
                        tls_context=smtp_tls_context(settings),
                        require_tls=settings.smtp_require_tls)
    await server.start()
    return server


@pytest.fixture
async def offering(runtime: Runtime, certificate: Certificate) -> AsyncIterator[SmtpServer]:
    server = await started(runtime, with_tls(runtime.settings, certificate))
    yield server
    await server.stop()


@pytest.fixture
async def requiring(runtime: Runtime, certificate: Certificate) -> AsyncIterator[SmtpServer]:
    server = await started(runtime, with_tls(runtime.settings, certificate, required=True))
    yield server
    await server.stop()


def trusting(certificate: Certificate) -> ssl.SSLContext:
    """A client's context that trusts only our self-signed certificate (and checks the
    name: the server is reached as 127.0.0.1, which the certificate names)."""
    return ssl.create_default_context(cadata=certificate.pem.decode("ascii"))


def client_of(server: SmtpServer) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname="127.0.0.1", port=server.bound_port, start_tls=False,
                           timeout=30)


async def subjects_in(api: httpx.AsyncClient, ws: Workspace) -> list[str]:
    r = await api.get("/api/v1/conversations", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return sorted(c["subject"] for c in r.json()["items"])


async def test_starttls_is_offered_and_a_mail_sent_over_it_is_stored(
        offering: SmtpServer, certificate: Certificate, factory: Factory,
        api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender = f"{unique('customer')}@customer.example"
    client = client_of(offering)
    async with client:
        await client.ehlo()
        assert client.supports_extension("starttls")
        code, _ = await client.starttls(tls_context=trusting(certificate))
        assert code == 220
        assert client.transport is not None
        assert client.transport.get_extra_info("peercert") is not None  # encrypted, verified
        await client.ehlo()
        assert not client.supports_extension("starttls")  # once is enough
        await client.mail(sender)
        await client.rcpt(address)
        code, _ = await client.data(make_mail(sender=sender, to=address, subject="Over TLS"))
        assert code == 250
    assert await subjects_in(api, ws) == ["Over TLS"]


async def test_plain_delivery_is_still_accepted_when_tls_is_only_offered(
        offering: SmtpServer, factory: Factory, api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender = f"{unique('customer')}@customer.example"
    client = client_of(offering)
    async with client:
        await client.ehlo()
        assert client.supports_extension("starttls")
        await client.mail(sender)
        await client.rcpt(address)
        code, _ = await client.data(make_mail(sender=sender, to=address, subject="In clear"))
        assert code == 250
    assert await subjects_in(api, ws) == ["In clear"]


async def test_when_tls_is_required_mail_before_starttls_gets_530(
        requiring: SmtpServer, certificate: Certificate, factory: Factory,
        api: httpx.AsyncClient) -> None:
    ws = await factory.workspace()
    _, address = await factory.email_inbox(ws)
    sender = f"{unique('customer')}@customer.example"
    client = client_of(requiring)
    async with client:
        await client.ehlo()
        assert client.supports_extension("starttls")
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await client.mail(sender)
        assert refused.value.code == 530
        await client.starttls(tls_context=trusting(certificate))
        await client.ehlo()
        await client.mail(sender)
        await client.rcpt(address)
        code, _ = await client.data(make_mail(sender=sender, to=address, subject="Had to"))
        assert code == 250
    assert await subjects_in(api, ws) == ["Had to"]


async def test_without_a_certificate_starttls_is_not_advertised(runtime: Runtime) -> None:
    server = await started(runtime, runtime.settings)
    try:
        client = client_of(server)
        async with client:
            await client.ehlo()
            assert not client.supports_extension("starttls")
    finally:
        await server.stop()


def test_bad_tls_settings_are_refused_in_one_sentence(
        certificate: Certificate, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    def refusal(**update: object) -> str:
        with pytest.raises(SmtpTlsSettingsError) as refused:
            smtp_tls_context(settings.model_copy(update={
                "smtp_tls_cert": None, "smtp_tls_key": None, "smtp_require_tls": False,
                **update}))
        message = str(refused.value)
        assert "\n" not in message
        return message

    missing = tmp_path / "nowhere.crt"
    said = refusal(smtp_tls_cert=missing, smtp_tls_key=certificate.key)
    assert "FRONTDESK_SMTP_TLS_CERT" in said and str(missing) in said and "cannot be read" in said
    said = refusal(smtp_tls_cert=certificate.cert)
    assert "FRONTDESK_SMTP_TLS_KEY is not" in said
    said = refusal(smtp_require_tls=True)
    assert "FRONTDESK_SMTP_REQUIRE_TLS" in said
    other = self_signed(tmp_path, "other")  # a key that is not this certificate's
    said = refusal(smtp_tls_cert=certificate.cert, smtp_tls_key=other.key)
    assert "do not load" in said
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    assert "do not load" in refusal(smtp_tls_cert=garbage, smtp_tls_key=certificate.key)
    # Nothing configured: no TLS, no error.
    assert smtp_tls_context(settings.model_copy(update={
        "smtp_tls_cert": None, "smtp_tls_key": None, "smtp_require_tls": False})) is None


def test_serve_with_an_unreadable_certificate_refuses_to_start_in_one_sentence(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env.update({"FRONTDESK_DATA_DIR": str(tmp_path), "FRONTDESK_SMTP_PORT": str(free_port()),
                "FRONTDESK_SMTP_TLS_CERT": str(tmp_path / "missing.crt"),
                "FRONTDESK_SMTP_TLS_KEY": str(tmp_path / "missing.key")})
    frontdesk = str(Path(sys.executable).parent / "frontdesk")
    result = subprocess.run([frontdesk, "serve", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    said = " ".join(result.stderr.split())
    assert "FRONTDESK_SMTP_TLS_CERT" in said and "cannot be read" in said
