"""The `frontdesk` command. Operators and scripts depend on these forms: keep them stable."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.config import get_settings
from frontdesk.core.errors import FrontdeskError

app = typer.Typer(help="Frontdesk: omnichannel customer service.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
admin = typer.Typer(help="Users and API tokens.", no_args_is_help=True)
app.add_typer(admin, name="admin")
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def _fail(message: str) -> None:
    err.print(f"[red]Error:[/red] {message}")
    raise typer.Exit(1)


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; turn known failures into one sentence instead of a traceback."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        return asyncio.run(make())  # type: ignore[arg-type]
    except FrontdeskError as exc:
        _fail(exc.message)
    except (OperationalError, ProgrammingError) as exc:
        _fail(f"The database refused: {str(exc.orig).strip().splitlines()[0]}. "
              "Is FRONTDESK_DATABASE_URL right, and has `frontdesk migrate` run?")
    raise AssertionError("unreachable")


def _migrate_now() -> None:
    from sqlalchemy.exc import OperationalError

    from frontdesk.db.engine import UnsupportedDatabase
    from frontdesk.db.migrate import upgrade

    try:
        upgrade(get_settings().resolved_database_url())
    except UnsupportedDatabase as exc:
        _fail(str(exc))
    except OperationalError as exc:
        _fail(f"Cannot reach the database: {str(exc.orig).strip().splitlines()[0]}")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run any number of times)."""
    _migrate_now()
    console.print("[green]Database schema is up to date.[/green]")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Serve the API, the UI and the WebSocket (and the event dispatcher, unless
    FRONTDESK_EMBEDDED_WORKER=0 because `frontdesk worker` processes do that)."""
    import uvicorn

    from frontdesk.app import create_app
    from frontdesk.db.migrate import current_heads

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if not settings.embedded_worker and not settings.redis_url:
        err.print("[yellow]Warning:[/yellow] FRONTDESK_EMBEDDED_WORKER=0 without "
                  "FRONTDESK_REDIS_URL: the workers dispatch the events, and only Redis "
                  "carries them to the agents connected to this server.")
    try:
        if not current_heads(get_settings().resolved_database_url()):
            console.print("The database has no schema yet; migrating first.")
            _migrate_now()
    except Exception as exc:
        _fail(f"Cannot open the database: {exc}")
    application = create_app()
    # Everything imported and built so far (modules, routes, schemas, mappers: most of the
    # heap) lives as long as the process. Frozen, the collector stops walking it: a full
    # collection then takes ~5 ms instead of ~90, and under intake load one ran every
    # ~0.7 s, stalling every request in flight for that long (it was the whole p99).
    gc.collect()
    gc.freeze()
    # uvloop and httptools (uvicorn[standard]) named outright rather than found by "auto",
    # so that a missing one fails here instead of quietly serving on the slower fallbacks.
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False,
                ws_max_size=1 << 20, loop="uvloop", http="httptools")


@app.command()
def worker() -> None:
    """Dispatch events and deliver webhooks. Run several of them on PostgreSQL."""
    from frontdesk.runtime import Runtime

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.redis_url:
        # The worker's hub has no sockets: without Redis its real-time pushes reach nobody.
        err.print("[yellow]Warning:[/yellow] FRONTDESK_REDIS_URL is not set, so the events "
                  "this worker dispatches reach no agent's WebSocket (webhooks still go out). "
                  "Set it to the Redis that the web processes use.")

    async def main() -> None:
        runtime = Runtime(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            try:
                await runtime.start(run_dispatcher=True)
            except RuntimeError as exc:  # e.g. Redis unreachable: say so, no traceback
                _fail(str(exc))
            # soft_wrap: one line whatever the terminal width; scripts wait for it.
            console.print(f"Worker running on {runtime.read_engine.url.render_as_string()}; "
                          "Ctrl-C stops it.", soft_wrap=True)
            await stop.wait()
            console.print("Stopping: finishing the batch in hand.", soft_wrap=True)
        finally:
            # SIGTERM (an orchestrator stopping it) ends here too: the batch in hand is
            # committed or, if cut short, left to the other workers; nothing is lost.
            await runtime.stop()

    _run(main)


@admin.command("create-user")
def create_user(
    workspace: Annotated[str, typer.Option(help="workspace name; created if missing")],
    email: Annotated[str, typer.Option(help="the user's e-mail address")],
    password: Annotated[str, typer.Option(help="at least 8 characters")],
    role: Annotated[str, typer.Option(help="admin, supervisor or agent")] = "agent",
    name: Annotated[str, typer.Option(help="display name")] = "",
) -> None:
    """Create a user in a workspace (or change their role and password)."""
    from frontdesk.accounts.models import Role
    from frontdesk.accounts.service import create_user as create
    from frontdesk.accounts.service import ensure_workspace
    from frontdesk.contacts.identities import normalize_email

    try:
        the_role = Role(role.lower())
    except ValueError:
        _fail(f"'{role}' is not a role; choose admin, supervisor or agent")
    if len(password) < 8:
        _fail("The password needs at least 8 characters")
    try:
        normalize_email(email)
    except ValueError as exc:
        _fail(f"'{email}' is not an e-mail address: {exc}")

    async def main() -> tuple[int, int]:
        async with _session() as session:
            ws = await ensure_workspace(session, workspace)
            user, _ = await create(session, ws, email=email, role=the_role, password=password,
                                   name=name, reset_password=True)
            await session.commit()
            return ws.id, user.id

    ws_id, user_id = _run(main)
    console.print(f"User {email} (id {user_id}) is {the_role.value} of workspace "
                  f"'{workspace}' (id {ws_id}).")


@admin.command("create-token")
def create_token(
    workspace: Annotated[str, typer.Option(help="workspace name")],
    email: Annotated[str, typer.Option(help="the user the token acts as")],
    name: Annotated[str, typer.Option(help="what the token is for")] = "cli",
) -> None:
    """Create an API token; it is printed alone on the last line."""
    from frontdesk.accounts.service import create_token_for_email

    async def main() -> str:
        async with _session() as session:
            token = await create_token_for_email(session, workspace, email, name)
            await session.commit()
            return token

    token = _run(main)
    console.print(f"API token for {email} in '{workspace}' (shown once, keep it safe):")
    print(token)


@app.command()
def demo(
    workspace: Annotated[str, typer.Option(help="name of the demo workspace")] = "Demo",
) -> None:
    """Create a demo workspace: agents, teams, contacts and conversations in four languages."""
    from frontdesk.demo import DEMO_PASSWORD, seed_demo

    _migrate_now()
    summary = _run(lambda: seed_demo(workspace))
    console.print(f"[green]Demo workspace '{workspace}' is ready:[/green] {summary}")
    console.print(f"Sign in as admin@demo.frontdesk.test / {DEMO_PASSWORD}")


@asynccontextmanager
async def _session() -> AsyncIterator[AsyncSession]:
    """A session for one CLI command, on an engine that lives as long as the command."""
    from frontdesk.db.engine import make_async_engine, make_sessionmaker

    engine = make_async_engine(get_settings().resolved_database_url())
    try:
        async with make_sessionmaker(engine)() as session:
            yield session
    finally:
        await engine.dispose()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
