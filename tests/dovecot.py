"""A private Dovecot IMAP server for the tests: its own configuration, users, Maildirs,
logs and self-signed certificate in a scratch directory, listening on free loopback ports
(plain with STARTTLS, and implicit TLS). Nothing system-wide is read or changed; the
`dovecot-imapd` package itself is installed by `make imap-server` (which `make pytest`
depends on).

Tests put mail in with `append` (real IMAP APPEND, through imaplib) and each uses its own
folder (`new_folder`), so they never see each other's mail."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import imaplib
import ipaddress
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "support@imap.test"
PASSWORD = "imap-Test-pass-7"  # the private test server's main user
SPARE_USERS = 50
PREFIX = "frontdesk-dovecot-"


@dataclasses.dataclass
class Dovecot:
    host: str
    port: int  # plain IMAP; STARTTLS offered
    tls_port: int  # implicit TLS (IMAPS)
    user: str
    password: str
    ca_file: Path  # the self-signed certificate: trust it and TLS verifies
    home: Path
    spare_users: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4_SSL]:
        imap = imaplib.IMAP4_SSL(self.host, self.tls_port, ssl_context=self.tls_context())
        try:
            imap.login(self.user, self.password)
            yield imap
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    def new_user(self) -> Dovecot:
        """The same server as another user, with a mailbox of its own: for tests that read
        the server's log of that user's sessions. (Made at start: dovecot notices a changed
        passwd file by its mtime, in whole seconds, so one written later may go unseen.)"""
        user, password = self.spare_users.pop()
        return dataclasses.replace(self, user=user, password=password, spare_users=[])

    def log_of(self, user: str) -> list[str]:
        log = (self.home / "dovecot.log").read_text(errors="replace")
        return [line for line in log.splitlines() if f"imap({user})" in line]

    def new_folder(self) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        with self.client() as imap:
            typ, data = imap.create(name)
            assert typ == "OK", data
        return name

    def recreate_folder(self, name: str) -> None:
        """Delete and create it again: its mail is gone and UIDVALIDITY changes."""
        with self.client() as imap:
            assert imap.delete(name)[0] == "OK"
            assert imap.create(name)[0] == "OK"

    def append(self, raw: bytes, folder: str, *, when: dt.datetime | None = None,
               flags: str = "") -> None:
        with self.client() as imap:
            date = imaplib.Time2Internaldate(when or dt.datetime.now(dt.UTC))
            typ, data = imap.append(folder, f"({flags})" if flags else None, date, raw)
            assert typ == "OK", data

    def append_many(self, mails: list[bytes], folder: str) -> None:
        """APPEND after APPEND on one connection (quicker for hundreds)."""
        date = imaplib.Time2Internaldate(dt.datetime.now(dt.UTC))
        with self.client() as imap:
            for raw in mails:
                typ, data = imap.append(folder, None, date, raw)
                assert typ == "OK", data

    def uidvalidity(self, folder: str) -> int:
        with self.client() as imap:
            typ, data = imap.status(folder, "(UIDVALIDITY)")
            assert typ == "OK", data
            text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
            return int(text.rsplit("UIDVALIDITY", 1)[1].strip(" )"))

    def flags(self, folder: str) -> dict[int, set[str]]:
        """UID -> flags of every message in the folder."""
        with self.client() as imap:
            assert imap.select(folder, readonly=True)[0] == "OK"
            typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS)")
            assert typ == "OK", data
        found: dict[int, set[str]] = {}
        for item in data:
            if not isinstance(item, bytes):
                continue
            parsed = imaplib.ParseFlags(item)
            uid = int(item.split(b"UID ", 1)[1].split(b" ", 1)[0].rstrip(b")"))
            found[uid] = {f.decode() for f in parsed}
        return found

    def count(self, folder: str) -> int:
        with self.client() as imap:
            typ, data = imap.status(folder, "(MESSAGES)")
            assert typ == "OK", data
            text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
            return int(text.rsplit("MESSAGES", 1)[1].strip(" )"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(home: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = home / "cert.pem", home / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def _config(home: Path, port: int, tls_port: int, cert: Path, key: Path) -> str:
    # Run as root (CI, this machine): mail belongs to the system's `mail` user, the login
    # processes to the package's unprivileged users. As anyone else: everything as them.
    if os.geteuid() == 0:
        mail_user = pwd.getpwnam("mail")
        login_user, internal_user = "dovenull", "dovecot"
    else:
        mail_user = pwd.getpwuid(os.geteuid())
        login_user = internal_user = mail_user.pw_name
    return f"""
base_dir = {home}/run
state_dir = {home}/state
log_path = {home}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_location = maildir:~/Maildir
mailbox_list_index = yes
imap_idle_notify_interval = 10 secs
# Dovecot lets one user hold 10 connections from one address by default; the tests' pollers
# share a few users on 127.0.0.1, and a poller of an earlier test may still hold its IDLE
# while the next test's logs in.
protocol imap {{
  mail_max_userip_connections = 200
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {home}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={home}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def _wait_for_port(port: int, log: Path, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    text = log.read_text() if log.exists() else "(no log)"
    raise RuntimeError(f"dovecot did not listen on {port}:\n{text[-3000:]}")


def _stop_orphans() -> None:
    """Stop the Dovecots of earlier runs that were killed before they could (each scratch
    directory names the test process that made it)."""
    for home in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            owner = int((home / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{owner}").exists():
            continue  # a run in progress (another developer's, in parallel)
        subprocess.run([DOVECOT, "-c", str(home / "dovecot.conf"), "stop"], check=False,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    _stop_orphans()
    # Not under pytest's tmp_path: that is 0700, and dovecot's unprivileged processes must
    # reach the Maildirs and sockets in here.
    home = Path(tempfile.mkdtemp(prefix=PREFIX))
    (home / "owner.pid").write_text(str(os.getpid()))
    home.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (home / sub).mkdir()
    if os.geteuid() == 0:
        mail = pwd.getpwnam("mail")
        os.chown(home / "mail", mail.pw_uid, mail.pw_gid)
    cert, key = _self_signed(home)
    port, tls_port = _free_port(), _free_port()
    spare = [(f"user{n}@imap.test", uuid.uuid4().hex) for n in range(SPARE_USERS)]
    (home / "passwd").write_text("".join(f"{user}:{{PLAIN}}{password}::::::\n"
                                         for user, password in [(USER, PASSWORD), *spare]))
    conf = home / "dovecot.conf"
    conf.write_text(_config(home, port, tls_port, cert, key))
    # It daemonizes: its children must not inherit pipes we would wait on for EOF.
    with (home / "start.log").open("wb") as out:
        subprocess.run([DOVECOT, "-c", str(conf)], check=True, stdin=subprocess.DEVNULL,
                       stdout=out, stderr=out)
    try:
        _wait_for_port(port, home / "dovecot.log")
        _wait_for_port(tls_port, home / "dovecot.log")
        yield Dovecot("127.0.0.1", port, tls_port, USER, PASSWORD, cert, home, spare)
    finally:
        subprocess.run([DOVECOT, "-c", str(conf), "stop"], check=False,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        pid_file = home / "run" / "master.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """The private Dovecot of this test run (started on first use, stopped at the end)."""
    if not Path(DOVECOT).exists():
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed: `make imap-server` installs it")
        pytest.skip("dovecot is not installed (`make imap-server` installs it)")
    with running_dovecot() as server:
        yield server
