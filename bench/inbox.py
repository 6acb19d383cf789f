"""Inbox benchmark: the agent workspace's list and conversation pages with 100,000
conversations and 1,000,000 messages in PostgreSQL.

    python bench/inbox.py                       # 100k conversations, 1M messages
    python bench/inbox.py --conversations 20000 --messages 200000 --requests 50
    python bench/inbox.py --keep                # leave the database for EXPLAIN ANALYZE
    python bench/inbox.py --only search         # only the pages whose name has "search"

It (re)creates the scratch database `frontdesk_bench_inbox` on 127.0.0.1:5432, migrates it,
makes the people, teams and inboxes through the services, then fills conversations,
messages, contacts and tags with COPY (seconds, not the hours the API would take), runs
VACUUM ANALYZE, starts a real `frontdesk serve`, signs in as the admin, and requests every
inbox view, sort and filter, the counts, a "load more" page and conversation pages one
after the other on one keep-alive connection. It prints one JSON object: the fill's figures
and, per page, the latency percentiles in milliseconds as the client on the same machine
saw them (`floor` is the same client asking /healthz: what the client and HTTP cost alone).
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import (
    Principal,
    add_team_member,
    create_team,
    create_user,
    ensure_workspace,
)
from frontdesk.channels.service import create_inbox
from frontdesk.db.models import Base

sys.path.insert(0, str(Path(__file__).resolve().parent))
# bench/ is not a package: its helpers sit beside this file.
from ingest import (
    PG_ADMIN_DSN,
    free_port,
    frontdesk_command,
    latency_summary,
    log,
    wait_listening,
)

DATABASE = "frontdesk_bench_inbox"
WORKSPACE = "Bench inbox"
ADMIN_EMAIL = "bench-inbox-admin@example.com"
ADMIN_PASSWORD = "bench-password-1"  # a throwaway scratch database
AGENTS = 25
TAGS = ("refund", "vip", "bug", "billing", "shipping", "login", "feedback", "urgent-fix",
        "returns", "invoice", "mobile", "api", "outage", "upgrade", "cancel")
WORDS = ("order", "delivery", "invoice", "refund", "account", "password", "the", "app", "is",
         "not", "working", "please", "help", "my", "card", "was", "charged", "twice", "when",
         "will", "it", "arrive", "thanks", "hello", "login", "code", "never", "arrives",
         "subscription", "cancel", "upgrade", "plan", "error", "page", "settings", "address",
         "change", "package", "tracking", "number", "support", "question", "about", "price")
# One conversation in ten is in Chinese: words of one to three characters written without
# spaces, so searching them means the short terms a trigram cannot serve.
CJK_WORDS = ("订单", "快递", "退款", "发票", "账户", "密码", "我的", "没有", "收到", "请", "帮忙",
             "查一下", "什么", "时候", "到", "谢谢", "你好", "登录", "验证码", "取消", "升级",
             "套餐", "错误", "页面", "设置", "地址", "修改", "包裹", "物流", "单号", "客服",
             "问题", "价格", "扣款", "两次", "已经", "还是", "不能", "使用", "应用")
CHINESE_SHARE = 0.1
# In about one Chinese message in 2,000: a rare term that does occur.
RARE_CJK_WORD = "赔偿"
STATUSES = (("open", 25), ("pending", 10), ("snoozed", 5), ("resolved", 50), ("closed", 10))
PRIORITIES = (("none", 60), ("low", 10), ("medium", 15), ("high", 10), ("urgent", 5))


def _weighted(pairs: tuple[tuple[str, int], ...]) -> Callable[[random.Random], str]:
    values = [v for v, _ in pairs]
    weights = [w for _, w in pairs]
    return lambda rnd: rnd.choices(values, weights)[0]


# ------------------------------------------------------------------------- the database


def admin_dsn(database: str) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"


def recreate_database() -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')


def drop_database() -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def app_url() -> str:
    base = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{base}/{DATABASE}"


def server_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env.update({"FRONTDESK_DATABASE_URL": app_url(), "FRONTDESK_DATA_DIR": str(data_dir),
                "FRONTDESK_SMTP_PORT": "0"})
    return env


@dataclass
class People:
    workspace_id: int
    admin_id: int
    agent_ids: list[int]
    team_ids: list[int]
    inbox_ids: list[int]  # the last one is the e-mail inbox


async def make_people() -> People:
    """The workspace, its people, teams and inboxes, through the services."""
    engine = create_async_engine(app_url())
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            ws = await ensure_workspace(session, WORKSPACE)
            admin, _ = await create_user(session, ws, email=ADMIN_EMAIL, role=Role.ADMIN,
                                         password=ADMIN_PASSWORD, name="Bench Admin")
            agents = []
            for i in range(AGENTS):
                user, _ = await create_user(session, ws, email=f"agent{i}@bench.example.com",
                                            role=Role.AGENT, name=f"Agent {i}")
                agents.append(user.id)
            principal = Principal(admin.id, ws.id, Role.ADMIN)
            teams = []
            for n, name in enumerate(("Billing", "Technical", "Shipping", "Accounts")):
                team = await create_team(session, principal, name)
                for agent_id in agents[n::4]:
                    await add_team_member(session, principal, team.id, agent_id)
                teams.append(team.id)
            inboxes = [(await create_inbox(session, principal, name=name, channel="api")).id
                       for name in ("Website", "Mobile app")]
            inboxes.append((await create_inbox(session, principal, name="Support mail",
                                               channel="email",
                                               email="support@bench.example.com")).id)
            await session.commit()
            return People(ws.id, admin.id, agents, teams, inboxes)
    finally:
        await engine.dispose()


def _defaults(table: str, given: tuple[str, ...]) -> dict[str, Any]:
    """Values for the table's other required columns, from the models' own defaults (so
    columns added later do not break the fill)."""
    out: dict[str, Any] = {}
    for column in Base.metadata.tables[table].c:
        if column.name in given or column.nullable or column.primary_key:
            continue
        if column.server_default is not None or column.default is None:
            continue
        value = column.default.arg  # type: ignore[attr-defined]
        if callable(value):
            value = value(None)
        out[column.name] = Jsonb(value) if isinstance(value, dict | list) else value
    return out


class Copier:
    """COPY rows into one table, filling the columns the caller does not give."""

    def __init__(self, conn: psycopg.Connection[Any], table: str, columns: tuple[str, ...]):
        self.extra = _defaults(table, columns)
        names = ", ".join((*columns, *self.extra))
        self._context = conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN")
        self._copy = self._context.__enter__()
        self._tail = tuple(self.extra.values())
        self.rows = 0

    def add(self, *values: Any) -> None:
        self._copy.write_row((*values, *self._tail))
        self.rows += 1

    def close(self) -> None:
        self._context.__exit__(None, None, None)


def _next_id(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()
    return int(row[0]) if row else 1


def _advance_sequence(conn: psycopg.Connection[Any], table: str) -> None:
    conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                 f"(SELECT max(id) FROM {table}))")


def _text(rnd: random.Random, low: int, high: int, chinese: bool = False) -> str:
    if chinese:
        words = rnd.choices(CJK_WORDS, k=rnd.randint(low, high))
        if rnd.random() < 0.0005:
            words.insert(rnd.randrange(len(words) + 1), RARE_CJK_WORD)
        return "".join(words) + "。"
    return " ".join(rnd.choices(WORDS, k=rnd.randint(low, high))).capitalize() + "."


@dataclass
class Filled:
    conversations: int = 0
    messages: int = 0
    contacts: int = 0
    tagged: int = 0
    seconds: float = 0.0
    open_conversation: int = 0  # a long open conversation, for the conversation page
    extras: dict[str, int] = field(default_factory=dict)


def fill(people: People, conversations: int, messages: int, seed: int = 7) -> Filled:
    """Contacts, conversations, messages and tags by COPY, in one transaction."""
    rnd = random.Random(seed)
    status_of = _weighted(STATUSES)
    priority_of = _weighted(PRIORITIES)
    now = datetime.now(UTC)
    started = time.monotonic()
    filled = Filled()
    ws = people.workspace_id
    with psycopg.connect(admin_dsn(DATABASE)) as conn:
        contact_count = max(1, int(conversations * 0.7))
        first_contact = _next_id(conn, "contacts")
        contacts = Copier(conn, "contacts", ("id", "workspace_id", "name", "email", "phone",
                                             "custom_attributes", "created_at", "updated_at"))
        for i in range(contact_count):
            made = now - timedelta(days=rnd.uniform(0, 400))
            contacts.add(first_contact + i, ws, f"Customer {i}", f"customer{i}@example.net",
                         None, Jsonb({}), made, made)
        contacts.close()
        filled.contacts = contacts.rows

        tag_ids = []
        for name in TAGS:
            row = conn.execute("INSERT INTO tags (workspace_id, name, created_at) "
                               "VALUES (%s, %s, %s) RETURNING id", (ws, name, now)).fetchone()
            assert row is not None
            tag_ids.append(int(row[0]))

        first = _next_id(conn, "conversations")
        convs = Copier(conn, "conversations", (
            "id", "workspace_id", "inbox_id", "contact_id", "status", "priority", "assignee_id",
            "team_id", "subject", "custom_fields", "snoozed_until", "first_response_at",
            "last_activity_at", "waiting_since", "created_at", "updated_at"))
        spans: list[tuple[int, int, int, datetime, datetime, bool]] = []
        tags_of: list[tuple[int, int]] = []
        for i in range(conversations):
            cid = first + i
            status = status_of(rnd)
            created = now - timedelta(days=rnd.uniform(0, 365) ** 1.5 / 19)
            last = min(now, created + timedelta(hours=rnd.uniform(0, 72)))
            inbox = rnd.choices(people.inbox_ids, (60, 25, 15))[0]
            active = status in ("open", "pending", "snoozed")
            if rnd.random() < 0.03:
                assignee: int | None = people.admin_id
            elif active and rnd.random() < 0.3:
                assignee = None
            else:
                assignee = rnd.choice(people.agent_ids)
            team = rnd.choice(people.team_ids) if rnd.random() < 0.7 else None
            waiting = (last - timedelta(minutes=rnd.uniform(0, 600))
                       if active and rnd.random() < 0.6 else None)
            snoozed = now + timedelta(days=2) if status == "snoozed" else None
            contact = first_contact + rnd.randrange(contact_count)
            chinese = rnd.random() < CHINESE_SHARE
            convs.add(cid, ws, inbox, contact, status, priority_of(rnd), assignee, team,
                      f"Order {rnd.randint(10000, 99999)}: {_text(rnd, 2, 5, chinese)}",
                      Jsonb({}), snoozed, created + timedelta(minutes=5), last, waiting,
                      created, last)
            spans.append((cid, inbox, contact, created, last, chinese))
            if rnd.random() < 0.25:
                for tag in rnd.sample(tag_ids, rnd.randint(1, 2)):
                    tags_of.append((cid, tag))
        convs.close()
        filled.conversations = convs.rows

        links = Copier(conn, "conversation_tags", ("conversation_id", "tag_id", "workspace_id"))
        for cid, tag in tags_of:
            links.add(cid, tag, ws)
        links.close()
        filled.tagged = links.rows

        # The messages: between 0.2 and 1.8 times the average per conversation, exactly
        # `messages` in all, each conversation's in time order.
        weights = [rnd.uniform(0.2, 1.8) for _ in spans]
        scale = messages / sum(weights)
        counts = [max(1, round(w * scale)) for w in weights]
        surplus = sum(counts) - messages
        for index in range(len(counts)):
            if surplus == 0:
                break
            change = min(surplus, counts[index] - 1) if surplus > 0 else surplus
            counts[index] -= change
            surplus -= change
        msgs = Copier(conn, "messages", (
            "workspace_id", "conversation_id", "inbox_id", "message_type", "sender_type",
            "sender_contact_id", "sender_user_id", "content", "content_html", "attachments",
            "external_id", "delivery_status", "created_at"))
        rnd_msgs = random.Random(seed + 1)
        longest = (0, 0)
        written = 0
        for index, ((cid, inbox, contact, created, last, chinese), n) in enumerate(
                zip(spans, counts, strict=True)):
            step = (last - created) / max(1, n)
            for k in range(n):
                at = created + step * k
                if k % 2 == 0:
                    msgs.add(ws, cid, inbox, "incoming", "contact", contact, None,
                             _text(rnd_msgs, 8, 40, chinese), None, Jsonb([]), None,
                             "received", at)
                elif rnd_msgs.random() < 0.15:
                    msgs.add(ws, cid, inbox, "note", "user", None, people.admin_id,
                             _text(rnd_msgs, 4, 15, chinese), None, Jsonb([]), None,
                             "sent", at)
                else:
                    msgs.add(ws, cid, inbox, "outgoing", "user", None,
                             rnd_msgs.choice(people.agent_ids), _text(rnd_msgs, 8, 50, chinese),
                             None, Jsonb([]), None, "sent", at)
            written += n
            if n > longest[1] and n <= 60:
                longest = (cid, n)
            if index % 20000 == 0:
                log(f"messages: {written:,} of {messages:,}")
        msgs.close()
        filled.messages = msgs.rows
        filled.open_conversation = longest[0]
        for table in ("contacts", "conversations", "messages"):
            _advance_sequence(conn, table)
        conn.execute("UPDATE conversations SET status = 'open' WHERE id = %s",
                     (filled.open_conversation,))
        # When each conversation's newest customer message came (what intake stamps), and
        # the admin's read positions: 70 % of the conversations read up to that message,
        # the rest unread for them (the "unread" filter's walk).
        conn.execute(
            "UPDATE conversations c SET last_incoming_at = m.at FROM (SELECT conversation_id, "
            "max(created_at) AS at FROM messages WHERE message_type = 'incoming' "
            "GROUP BY conversation_id) m WHERE m.conversation_id = c.id")
        conn.execute(
            "INSERT INTO conversation_reads (conversation_id, user_id, workspace_id, "
            "last_read_message_id, last_read_incoming_at, marked_unread, updated_at) "
            "SELECT id, %s, workspace_id, NULL, last_incoming_at, false, %s FROM conversations "
            "WHERE workspace_id = %s AND (id * 7919) %% 10 < 7", (people.admin_id, now, ws))
        conn.commit()
    with psycopg.connect(admin_dsn(DATABASE), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    filled.seconds = round(time.monotonic() - started, 1)
    return filled


# ----------------------------------------------------------------------------- the server


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = data_dir / "server.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*frontdesk_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "warning"],
            env=server_env(data_dir), cwd=data_dir, stdout=self._log, stderr=subprocess.STDOUT)
        wait_listening("127.0.0.1", self.port, self.proc, timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def migrate(data_dir: Path) -> None:
    done = subprocess.run([*frontdesk_command(), "migrate"], env=server_env(data_dir),
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`frontdesk migrate` failed: {done.stderr or done.stdout}")


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def signed_in(url: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=60, follow_redirects=False)
    token = CSRF.search(client.get("/app/login").text)
    assert token
    r = client.post("/app/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                        "csrf_token": token.group(1)})
    if r.status_code != 303:
        raise SystemExit(f"signing in answered {r.status_code}: {r.text[:300]}")
    page = client.get("/app/inbox")
    found = CSRF.search(page.text)
    assert found
    return client, found.group(1)


def timed(client: httpx.Client, path: str, headers: dict[str, str], requests: int,
          warmup: int = 3, before: Callable[[], None] | None = None) -> dict[str, Any]:
    """GET `path` `requests` times in a row; `before` runs ahead of each, off the clock."""
    for _ in range(warmup):
        r = client.get(path, headers=headers)
        if r.status_code != 200:
            raise SystemExit(f"GET {path} answered {r.status_code}: {r.text[:300]}")
    latencies = []
    for _ in range(requests):
        if before is not None:
            before()
        start = time.perf_counter_ns()
        r = client.get(path, headers=headers)
        latencies.append(time.perf_counter_ns() - start)
        if r.status_code != 200:
            raise SystemExit(f"GET {path} answered {r.status_code}")
    return {**latency_summary(latencies), "n": requests, "bytes": len(r.content)}


def pages(people: People, filled: Filled, more_cursor_path: str) -> Iterator[
        tuple[str, str, dict[str, str]]]:
    """(name, path, extra headers) of every page measured."""
    hx_list = {"HX-Request": "true", "HX-Target": "list-results"}
    team, inbox = people.team_ids[0], people.inbox_ids[0]
    yield "inbox (open, newest)", "/app/inbox?view=all", {}
    for sort in ("oldest", "waiting", "priority"):
        yield f"inbox sort={sort}", f"/app/inbox?view=all&sort={sort}", {}
    yield "inbox status=any", "/app/inbox?view=all&status=any", {}
    yield "inbox status=resolved", "/app/inbox?view=all&status=resolved", {}
    yield "view mine", "/app/inbox?view=mine", {}
    yield "view unassigned", "/app/inbox?view=unassigned", {}
    yield "view team", f"/app/inbox?view=all&team_id={team}", {}
    yield "view inbox", f"/app/inbox?view=all&inbox_id={inbox}", {}
    yield "view channel=email", "/app/inbox?view=all&channel=email", {}
    yield "filter priority=urgent", "/app/inbox?view=all&priority=urgent", {}
    yield "filter tag=vip", "/app/inbox?view=all&tag=vip", {}
    yield "filter agent", f"/app/inbox?view=all&assignee={people.agent_ids[0]}", {}
    yield "filter unread (30 % unread)", "/app/inbox?view=all&unread=1", {}
    yield "filter unread, status=resolved", "/app/inbox?view=all&status=resolved&unread=1", {}
    yield "list only (htmx), sort=waiting", "/app/inbox?view=all&sort=waiting", hx_list
    yield "load more (page 2)", more_cursor_path, {"HX-Request": "true"}
    yield "counts", "/app/inbox/counts?view=all", {"HX-Request": "true"}
    conv = filled.open_conversation
    yield "conversation page", f"/app/conversations/{conv}?view=all", {}
    yield "conversation pane (htmx)", f"/app/conversations/{conv}?view=all", {
        "HX-Request": "true", "HX-Target": "pane"}
    yield "search q=tracking (1M messages)", "/app/inbox?view=all&q=tracking", {}
    # A word no message has: the trigram indexes answer that nothing matches.
    yield "search, no match (1M messages)", "/app/inbox?view=all&q=zebra-unicorn", {}
    # A common word in a narrow view: too many matches to collect, so the view is walked
    # in its order with the condition on each conversation.
    yield "search q=tracking, resolved", "/app/inbox?view=all&status=resolved&q=tracking", {}
    # Terms shorter than a trigram: two letters nobody wrote, two common ones; Chinese
    # words of two characters, common, rare and absent; single characters; and a Chinese
    # word of three characters (the trigram index's).
    yield "search, two letters", "/app/inbox?view=all&q=zq", {}
    yield "search, two letters, common (in)", "/app/inbox?view=all&q=in", {}
    yield "search, CJK two, common (退款)", "/app/inbox?view=all&q=退款", {}
    yield "search, CJK two, rare (赔偿)", f"/app/inbox?view=all&q={RARE_CJK_WORD}", {}
    yield "search, CJK two, no match (鲸鱼)", "/app/inbox?view=all&q=鲸鱼", {}
    yield "search, CJK three (查一下)", "/app/inbox?view=all&q=查一下", {}
    yield "search, one letter, in every e-mail (x)", "/app/inbox?view=all&q=x", {}
    yield "search, one letter, common (a)", "/app/inbox?view=all&q=a", {}
    yield "search, CJK one, common (退)", "/app/inbox?view=all&q=退", {}
    yield "search, CJK one, no match (鲸)", "/app/inbox?view=all&q=鲸", {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="per page")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--only", metavar="TEXT", default="",
                        help="measure only the pages whose name contains TEXT (e.g. search)")
    args = parser.parse_args(argv)

    data_dir = Path(tempfile.mkdtemp(prefix="frontdesk-bench-inbox-"))
    log(f"creating {DATABASE}")
    recreate_database()
    result: dict[str, Any] = {"backend": "postgresql"}
    try:
        migrate(data_dir)
        people = asyncio.run(make_people())
        log(f"filling {args.conversations:,} conversations, {args.messages:,} messages")
        filled = fill(people, args.conversations, args.messages)
        result["fill"] = {"conversations": filled.conversations, "messages": filled.messages,
                          "contacts": filled.contacts, "tagged_conversations": filled.tagged,
                          "seconds_with_vacuum_analyze": filled.seconds}
        log(f"filled in {filled.seconds} s; starting the server")
        server = Server(data_dir)
        try:
            client, token = signed_in(server.url)
            hx = {"HX-Request": "true", "HX-Target": "list-region", "X-CSRF-Token": token}
            # Saved views in the navigation, counted on every page: one on the grouped
            # columns, one with a tag (its own count), one text search (not counted).
            for name, fields in (("Urgent open", {"priority": "urgent"}),
                                 ("VIP", {"tag": "vip", "status": "any"}),
                                 ("Tracking", {"q": "tracking"})):
                r = client.post("/app/views", headers=hx,
                                data={"name": name, "view": "all", **fields})
                assert r.status_code == 200, r.text[:300]
            first = client.get("/app/inbox?view=all").text
            found = re.search(r'hx-get="(/app/inbox/more\?[^"]+)"', first)
            assert found, "no load-more link on the first page"
            more = found.group(1).replace("&amp;", "&")
            result["floor"] = timed(client, "/healthz", {}, args.requests)
            result["pages"] = {}
            for name, path, headers in pages(people, filled, more):
                if args.only not in name:
                    continue
                requests = args.requests if not name.startswith("search") else max(
                    10, args.requests // 10)
                log(f"measuring {name}")
                result["pages"][name] = timed(client, path, headers, requests)
            # Every page above found the counts kept from the page before (nothing changed
            # meanwhile). Here a conversation changes before each request, as when customers
            # keep writing: every page pays for the grouped scan again.
            with psycopg.connect(admin_dsn(DATABASE), autocommit=True) as touch:
                def change() -> None:
                    touch.execute("UPDATE conversations SET updated_at = now() WHERE id = %s",
                                  (filled.open_conversation,))
                for name, path in (("inbox after a change (recount)", "/app/inbox?view=all"),
                                   ("counts after a change (recount)",
                                    "/app/inbox/counts?view=all")):
                    if args.only not in name:
                        continue
                    log(f"measuring {name}")
                    result["pages"][name] = timed(client, path, {"HX-Request": "true"}
                                                  if "counts" in path else {}, args.requests,
                                                  before=change)
            client.close()
        finally:
            server.stop()
            errors = [ln for ln in server.log_path.read_text(errors="replace").splitlines()
                      if "Traceback" in ln or " ERROR " in ln]
            if errors:
                log(f"the server logged {len(errors)} error line(s)")
    finally:
        if not args.keep:
            drop_database()
    goal = 150.0
    slow = {name: page["p95"] for name, page in result.get("pages", {}).items()
            if page["p95"] >= goal}
    result["goal_p95_ms"] = goal
    result["over_goal"] = slow
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
