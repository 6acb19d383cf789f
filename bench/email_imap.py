"""IMAP intake benchmark: N mails fetched from Dovecot and stored into conversations.

    python bench/email_imap.py                       # SQLite, 2,000 mails
    python bench/email_imap.py --backend postgresql  # scratch database on 127.0.0.1:5432
    python bench/email_imap.py --mails 5000

It starts a private Dovecot (tests/dovecot.py: its own config, user and self-signed
certificate on free loopback ports; needs the dovecot-imapd package, `make imap-server`),
APPENDs every mail into a folder before the clock starts (bench/email_ingest.py's mails:
plain text and HTML, a quarter of them replies threading by In-Reply-To), starts a real
`frontdesk serve` on a scratch database (bench/ingest.py's set-up) and creates an e-mail
inbox. The clock runs from the PUT of the inbox's IMAP settings (implicit TLS) until the
mailbox's last stored UID is the last mail's: every mail fetched, committed, and flagged
\\Seen in the order the poller does it (sizes, bodies in chunks, one store each, flags).
A warm-up folder goes first. It prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import imaplib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from email_ingest import build_mails  # noqa: E402
from ingest import Scratch, http_json, log, started_server  # noqa: E402
from tests.dovecot import Dovecot, running_dovecot  # noqa: E402


def fill_folder(server: Dovecot, mails: list[bytes]) -> str:
    folder = server.new_folder()
    date = imaplib.Time2Internaldate(dt.datetime.now(dt.UTC))
    with server.client() as imap:  # one connection: APPEND after APPEND
        for raw in mails:
            typ, data = imap.append(folder, None, date, raw)
            if typ != "OK":
                raise SystemExit(f"APPEND failed: {data}")
    return folder


def wait_until_stored(scratch: Scratch, inbox_id: int, last_uid: int, mailbox: str,
                      timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = scratch.query("SELECT last_uid, mailbox, last_error FROM imap_mailboxes "
                             f"WHERE inbox_id = {inbox_id}")
        if rows and rows[0][1] == mailbox and rows[0][0] >= last_uid:
            return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"the mailbox was not caught up within {timeout:.0f} s: {rows}")


def run(backend: str, mails: int, warmup: int) -> dict[str, Any]:
    with running_dovecot() as server:
        address = f"support@bench-{uuid.uuid4().hex[:6]}.example"
        log(f"{backend}: building and appending {warmup + mails} mails into Dovecot")
        built = build_mails(warmup + mails, address)
        warm_folder = fill_folder(server, built[:warmup])
        folder = fill_folder(server, built[warmup:])
        raw_bytes = sum(len(m) for m in built[warmup:])
        env = {"FRONTDESK_IMAP_ALLOW_PRIVATE": "1", "FRONTDESK_IMAP_CA_FILE": str(server.ca_file),
               "FRONTDESK_EMAIL_RATE_LIMIT_COUNT": "1000000"}
        with Scratch.create(backend) as scratch, started_server(scratch, env) as target:
            base = f"http://127.0.0.1:{target.port}/api/v1"
            status, inbox = http_json("POST", f"{base}/inboxes", target.token,
                                      {"name": "Bench IMAP", "channel": "email",
                                       "email": address})
            if status != 201:
                raise SystemExit(f"creating the e-mail inbox answered {status}: {inbox}")
            inbox_id = int(inbox["id"])

            def poll(mailbox: str) -> float:
                status, body = http_json(
                    "PUT", f"{base}/inboxes/{inbox_id}/imap", target.token,
                    {"host": server.host, "port": server.tls_port, "tls": "tls",
                     "username": server.user, "password": server.password,
                     "mailbox": mailbox})
                if status != 200:
                    raise SystemExit(f"PUT .../imap answered {status}: {body}")
                return time.monotonic()

            log(f"{backend}: warming up with {warmup} mails")
            poll(warm_folder)
            wait_until_stored(scratch, inbox_id, warmup, warm_folder, timeout=300)
            cpu_before = target.cpu_seconds()
            log(f"{backend}: fetching {mails} mails")
            started = poll(folder)  # another mailbox: the poller starts it from UID 1
            finished = wait_until_stored(scratch, inbox_id, mails, folder, timeout=1800)
            cpu_after = target.cpu_seconds()
            stored = scratch.query(
                f"SELECT count(*) FROM messages WHERE inbox_id = {inbox_id}")[0][0]
            conversations = scratch.query(
                f"SELECT count(*) FROM conversations WHERE inbox_id = {inbox_id}")[0][0]
        seen = sum("\\Seen" in flags for flags in server.flags(folder).values())
    seconds = finished - started
    return {
        "backend": backend, "mails": mails, "seconds": round(seconds, 3),
        "mails_per_second": round(mails / seconds, 1),
        "megabytes_per_second": round(raw_bytes / seconds / 1e6, 2),
        "stored_messages": stored, "expected_messages": warmup + mails,
        "conversations": conversations, "flagged_seen": seen,
        "server_cpu_seconds": None if cpu_before is None or cpu_after is None
        else round(cpu_after - cpu_before, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(run(args.backend, args.mails, args.warmup), indent=2))


if __name__ == "__main__":
    main()
