"""E-mail intake benchmark: N mails through the SMTP server into stored conversations.

    python bench/email_ingest.py                       # SQLite, 2,000 mails, 8 connections
    python bench/email_ingest.py --backend postgresql  # scratch database on 127.0.0.1:5432
    python bench/email_ingest.py --mails 5000 --concurrency 16

It starts a real `frontdesk serve` (with its SMTP server on a free port) on a scratch
database (bench/ingest.py's set-up), creates an e-mail inbox through the API, builds every
mail before the clock starts (plain text and HTML alternatives, a quarter of them replies
that thread into an earlier conversation by In-Reply-To), then delivers them over C
concurrent SMTP connections, each sending mail after mail on one connection as an MTA's
queue runner does. A mail counts when its 250 came back, i.e. after its commit. The rate
limit per sender is lifted (a benchmark is a mail storm). It prints one JSON object, and
exits with 1 (saying why on stderr) when the inbox does not hold exactly the mails whose
250 came back, warm-up included, or when any mail was refused: a rate is no figure then.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import (
    Scratch,
    free_port,
    http_json,
    latency_summary,
    log,
    started_server,
    wait_listening,
)

SENDERS = 400


def build_mails(count: int, to: str) -> list[bytes]:
    mails: list[bytes] = []
    first_ids: dict[int, str] = {}
    now = format_datetime(datetime.now(UTC))
    for n in range(count):
        sender = n % SENDERS
        message_id = f"<{uuid.uuid4().hex}@customer{sender}.example>"
        msg = EmailMessage()
        msg["From"] = f"Customer {sender} <customer{sender}@customer{sender}.example>"
        msg["To"] = to
        msg["Date"] = now
        msg["Message-ID"] = message_id
        if sender in first_ids and n % 4 == 0:
            msg["Subject"] = f"Re: Order {sender}"
            msg["In-Reply-To"] = first_ids[sender]
            msg["References"] = first_ids[sender]
            body = ("Thanks, but it still has not arrived.\n\n"
                    f"On Mon, Support wrote:\n> We are looking into order {sender}.\n")
        else:
            msg["Subject"] = f"Order {sender}"
            first_ids.setdefault(sender, message_id)
            body = f"Hello,\n\nmy order {sender} has not arrived. Can you help?\n\nAnna\n"
        msg.set_content(body)
        msg.add_alternative("<p>" + body.replace("\n", "<br>") + "</p>", subtype="html")
        mails.append(bytes(msg))
    return mails


async def deliver(port: int, to: str, mails: list[bytes], concurrency: int) -> dict[str, Any]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for raw in mails:
        queue.put_nowait(raw)
    latencies: list[int] = []
    failures = 0

    async def runner() -> None:
        nonlocal failures
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=60)
        async with client:
            while True:
                try:
                    raw = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter_ns()
                try:
                    await client.sendmail("mta@relay.example", [to], raw)
                except aiosmtplib.SMTPException:
                    failures += 1
                    continue
                latencies.append(time.perf_counter_ns() - started)

    started = time.perf_counter()
    await asyncio.gather(*(runner() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "accepted": len(latencies), "failed": failures,
            "mails_per_second": round(len(latencies) / seconds, 1),
            "latency_ms": latency_summary(latencies)}


def run(backend: str, mails: int, concurrency: int, warmup: int) -> dict[str, Any]:
    smtp_port = free_port()
    with Scratch.create(backend) as scratch, started_server(
            scratch, {"FRONTDESK_SMTP_PORT": str(smtp_port),
                      "FRONTDESK_EMAIL_RATE_LIMIT_COUNT": "1000000"}) as target:
        wait_listening("127.0.0.1", smtp_port, _Alive(), timeout=30)
        address = f"support@bench-{uuid.uuid4().hex[:6]}.example"
        status, inbox = http_json("POST", f"http://127.0.0.1:{target.port}/api/v1/inboxes",
                                  target.token, {"name": "Bench mail", "channel": "email",
                                                 "email": address})
        if status != 201:
            raise SystemExit(f"creating the e-mail inbox answered {status}: {inbox}")
        log(f"{backend}: building {warmup + mails} mails")
        built = build_mails(warmup + mails, address)
        log(f"{backend}: warming up with {warmup} mails")
        warmed = asyncio.run(deliver(smtp_port, address, built[:warmup], concurrency))
        load = [round(x, 2) for x in os.getloadavg()]
        cpu_before = target.cpu_seconds()
        log(f"{backend}: delivering {mails} mails over {concurrency} connections")
        figures = asyncio.run(deliver(smtp_port, address, built[warmup:], concurrency))
        cpu_after = target.cpu_seconds()
        inbox_id = int(inbox["id"])
        stored = scratch.query(f"SELECT count(*) FROM messages WHERE inbox_id = {inbox_id}")[0][0]
        conversations = scratch.query(
            f"SELECT count(*) FROM conversations WHERE inbox_id = {inbox_id}")[0][0]
    return {
        "backend": backend, "mails": mails, "concurrency": concurrency, **figures,
        "stored_messages": stored, "expected_messages": warmup + mails,
        "delivered_messages": warmed["accepted"] + figures["accepted"],
        "refused_messages": warmed["failed"] + figures["failed"],
        "conversations": conversations, "load_average_before": load,
        "server_cpu_seconds": None if cpu_before is None or cpu_after is None
        else round(cpu_after - cpu_before, 2),
    }


class _Alive:
    """wait_listening wants a process to watch; the server is watched by started_server."""

    returncode = None

    def poll(self) -> None:
        return None


def wrong_count(result: dict[str, Any]) -> str | None:
    """Why the run's figures cannot be trusted (mail lost, stored twice, or refused), or
    None when the inbox holds exactly what was delivered."""
    stored, delivered = result["stored_messages"], result["delivered_messages"]
    if stored != delivered:
        what = "lost" if stored < delivered else "too many: stored twice?"
        return (f"{delivered} mails were accepted (250) but the inbox stores {stored} "
                f"messages ({abs(delivered - stored)} {what})")
    if result["refused_messages"]:
        return (f"{result['refused_messages']} of {result['expected_messages']} mails were "
                "refused by the SMTP server")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    import json

    result = run(args.backend, args.mails, args.concurrency, args.warmup)
    print(json.dumps(result, indent=2))
    problem = wrong_count(result)
    if problem is not None:
        print(f"email_ingest: {problem}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
