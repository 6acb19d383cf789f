"""The `frontdesk` command: the forms operators and scripts depend on, and its failures
being one readable sentence rather than a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
