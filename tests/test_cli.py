"""The `frontdesk` command: the forms operators and scripts depend on, and its failures
being one readable sentence rather than a traceback."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

FRONTDESK = str(Path(sys.executable).parent / "frontdesk")


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env["FRONTDESK_DATABASE_URL"] = db_url
    return subprocess.run([FRONTDESK, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/cli.db"


def test_migrate_twice_then_create_user_and_token_prints_the_token_alone_last(
    sqlite_url: str,
) -> None:
    assert run(sqlite_url, "migrate").returncode == 0
    assert run(sqlite_url, "migrate").returncode == 0
    made = run(sqlite_url, "admin", "create-user", "--workspace", "Acme", "--email",
               "Admin@Acme.test", "--password", "Correct-Horse-9", "--role", "admin")
    assert made.returncode == 0, made.stderr
    token = run(sqlite_url, "admin", "create-token", "--workspace", "Acme", "--email",
                "admin@acme.test")
    assert token.returncode == 0, token.stderr
    last = token.stdout.strip().splitlines()[-1]
    assert last.startswith("fd_") and " " not in last


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("admin", "create-token", "--workspace", "Nowhere", "--email", "a@b.test"),
         "no workspace named 'Nowhere'"),
        (("admin", "create-user", "--workspace", "Acme", "--email", "a@b.test", "--password",
          "Correct-Horse-9", "--role", "overlord"), "not a role"),
        (("admin", "create-user", "--workspace", "Acme", "--email", "not-an-address",
          "--password", "Correct-Horse-9"), "not an e-mail address"),
        (("admin", "create-user", "--workspace", "Acme", "--email", "a@b.test", "--password",
          "short"), "at least 8 characters"),
    ],
)
def test_bad_input_gets_a_sentence_and_exit_code_1_not_a_traceback(
    sqlite_url: str, args: tuple[str, ...], says: str
) -> None:
    run(sqlite_url, "migrate")
    result = run(sqlite_url, *args)
    assert result.returncode == 1
    assert says in " ".join((result.stderr + result.stdout).split())
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_reported_in_one_sentence() -> None:
    result = run("postgresql://nobody@127.0.0.1:1/none", "migrate")
    assert result.returncode == 1
    assert "Cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unsupported_database_is_named() -> None:
    result = run("mysql://root@127.0.0.1/test", "migrate")
    assert result.returncode == 1
    assert "sqlite or postgresql" in " ".join(result.stderr.split())


# --- the README's first command ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_counts(data_dir: Path) -> dict[str, int]:
    with sqlite3.connect(data_dir / "frontdesk.db") as db:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("workspaces", "users", "teams", "team_members", "inboxes",
                              "contacts", "conversations", "messages", "contact_notes")}


def test_make_run_migrates_seeds_the_demo_and_serves_it(tmp_path: Path) -> None:
    """`make run`, step by step, as real processes on a fresh data directory: migrate and
    seed twice (both idempotent), a token printed alone on its last line, then the server,
    where the demo login signs in and the token reads the demo's conversations."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env.update(FRONTDESK_DATA_DIR=str(tmp_path), FRONTDESK_SMTP_PORT="0")

    def frontdesk(*args: str) -> str:
        done = subprocess.run([FRONTDESK, *args], env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, f"frontdesk {' '.join(args)}: {done.stderr}"
        return done.stdout

    frontdesk("migrate")
    frontdesk("migrate")
    said = frontdesk("demo")
    login = re.search(r"Sign in as (\S+) / (\S+)", said)
    assert login is not None, said
    seeded = demo_counts(tmp_path)
    frontdesk("demo")
    assert demo_counts(tmp_path) == seeded
    assert seeded["conversations"] >= 4 and seeded["users"] == 5
    token = frontdesk("admin", "create-token", "--workspace", "Demo", "--email",
                      login[1], "--name", "make-run").strip().splitlines()[-1]
    assert token.startswith("fd_") and " " not in token

    port = free_port()
    log = tmp_path / "serve.log"  # a file, not a pipe: a pipe nobody reads fills and blocks
    with log.open("wb") as log_file:
        server = subprocess.Popen([FRONTDESK, "serve", "--host", "127.0.0.1", "--port",
                                   str(port)], env=env, stdout=log_file, stderr=log_file)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=5) as http:
            deadline = time.monotonic() + 15
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, f"serve exited: {log.read_text()}"
                assert time.monotonic() < deadline, "the server did not answer /healthz"
                time.sleep(0.1)

            form = http.get("/app/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert form.status_code == 200 and csrf is not None
            signed_in = http.post("/app/login", headers={"Origin": base}, data={
                "csrf_token": csrf[1], "email": login[1], "password": login[2], "next": ""})
            assert signed_in.status_code == 303, signed_in.text
            assert signed_in.headers["location"].startswith("/app")
            inbox = http.get(signed_in.headers["location"])
            assert inbox.status_code == 200 and "Emily Carter" in inbox.text

            bearer = {"Authorization": f"Bearer {token}"}
            listed = http.get("/api/v1/conversations", params={"limit": 50}, headers=bearer)
            assert listed.status_code == 200, listed.text
            assert len(listed.json()["items"]) == seeded["conversations"]
            said_by_customers = " ".join(
                message["content"]
                for conversation in listed.json()["items"]
                for message in http.get(f"/api/v1/conversations/{conversation['id']}/messages",
                                        headers=bearer).json()["items"])
            for writing in (r"[A-Za-z]", r"[\u0400-\u04ff]", r"[\u4e00-\u9fff]",
                            r"[\u0600-\u06ff]"):  # English, Russian, Chinese, Arabic
                assert re.search(writing, said_by_customers), writing
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
