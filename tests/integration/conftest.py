"""Fixtures of the process tests: a scratch database for each cluster of processes, and
the processes' logs printed when a test that used them fails."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.processes import Cluster, pg_available, redis_available, scratch_database

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


def need(kind: str) -> None:
    """Skip when a service is missing on a developer's machine; in CI, fail: a suite that
    silently skips its process tests proves nothing."""
    missing = None
    if kind == "postgresql" and not pg_available():
        missing = "PostgreSQL is not reachable at 127.0.0.1:5432"
    if kind == "redis" and not redis_available():
        missing = "Redis is not reachable at 127.0.0.1:6379"
    if missing and os.environ.get("CI"):
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)


@contextmanager
def clusters(workdir: Path) -> Iterator[tuple[Callable[[str], Cluster], list[Cluster]]]:
    made: list[Cluster] = []
    with ExitStack() as stack:
        def make(kind: str) -> Cluster:
            need(kind)
            home = workdir / f"cluster-{len(made) + 1}"
            home.mkdir()
            url = stack.enter_context(scratch_database(kind, home))
            cluster = Cluster(url, home)
            stack.callback(cluster.close)  # runs before the database is dropped
            made.append(cluster)
            return cluster

        yield make, made


def print_logs(made: list[Cluster]) -> None:
    for cluster in made:
        print(f"=== processes on {cluster.database_url} ==={cluster.explain()}")


@pytest.fixture
def make_cluster(request: pytest.FixtureRequest, tmp_path: Path
                 ) -> Iterator[Callable[[str], Cluster]]:
    """make_cluster("sqlite" | "postgresql"): processes on a fresh database of their own,
    so no other test's dispatcher touches its outbox. Stopped at the end of the test;
    their logs are printed if it failed."""
    with clusters(tmp_path) as (make, made):
        yield make
        if request.node.stash.get(_FAILED, False):
            print_logs(made)


@pytest.fixture(scope="module")
def make_module_cluster(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory
                        ) -> Iterator[Callable[[str], Cluster]]:
    """The same, shared by the tests of a module (process starts cost seconds each)."""
    failed_before = request.session.testsfailed
    with clusters(tmp_path_factory.mktemp("cluster")) as (make, made):
        yield make
        if request.session.testsfailed > failed_before:
            print_logs(made)
