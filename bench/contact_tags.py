"""Contact list filtered by the contact's own tag: `GET /api/v1/contacts?tag=` through the
real service on a scratch PostgreSQL database, one workspace of N contacts, tags common
(every 3rd), usual (every 10th), rare (every 10,000th) and absent. Prints the median and
p95 time of the first page (50 rows) of each.

    .venv/bin/python bench/contact_tags.py --contacts 100000

Needs the local PostgreSQL (127.0.0.1:5432, trust) that the tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal, ensure_workspace
from frontdesk.contacts import service
from frontdesk.db.engine import make_async_engine, make_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' process tools
from tests.processes import scratch_database, sync_dsn

TAGS = {"newsletter": 3, "vip": 10, "rare": 10_000}  # tag: every n-th contact carries it
STAMP = "2026-01-01T00:00:00Z"


def fill(url: str, workspace_id: int, contacts: int) -> None:
    with psycopg.connect(sync_dsn(url)) as conn:
        with conn.cursor().copy("COPY contacts (workspace_id, name, custom_attributes, "
                                "created_at, updated_at) FROM STDIN") as copy:
            for n in range(contacts):
                copy.write_row((workspace_id, f"Customer {n}", "{}", STAMP, STAMP))
        ids = [row[0] for row in conn.execute("SELECT id FROM contacts ORDER BY id")]
        with conn.cursor().copy("COPY contact_tags (workspace_id, contact_id, name, created_at) "
                                "FROM STDIN") as copy:
            for n, contact_id in enumerate(ids):
                for tag, every in TAGS.items():
                    if n % every == 0:
                        copy.write_row((workspace_id, contact_id, tag, STAMP))
        conn.execute("ANALYZE")
        conn.commit()


async def measure(url: str, contacts: int, rounds: int) -> None:
    engine = make_async_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session:
            workspace = await ensure_workspace(session, "bench")
            await session.commit()
            workspace_id = workspace.id
        fill(url, workspace_id, contacts)
        principal = Principal(1, workspace_id, Role.AGENT)
        print(f"{contacts} contacts; first page of 50, {rounds} rounds each")
        for tag in (None, *TAGS, "nobody-has-it"):
            times = []
            for _ in range(rounds):
                async with sessions() as session:
                    started = time.perf_counter()
                    rows, _ = await service.list_contacts(session, principal, q=None,
                                                          cursor=None, limit=50, tag=tag)
                    times.append((time.perf_counter() - started) * 1000)
            times.sort()
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            print(f"  tag={tag or '(none)':14} rows={len(rows):3}  "
                  f"median {statistics.median(times):5.1f} ms  p95 {p95:5.1f} ms")
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, scratch_database("postgresql", Path(tmp)) as url:
        asyncio.run(measure(url, args.contacts, args.rounds))
    with open("/proc/loadavg") as f:
        print("load average:", " ".join(f.read().split()[:3]))


if __name__ == "__main__":
    main()
