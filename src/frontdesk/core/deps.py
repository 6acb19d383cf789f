"""FastAPI dependencies shared by every module's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: commit when the route returns, roll back if it raised.
    Reads use the reader pool; anything else takes the writer pool."""
    runtime = get_runtime(request)
    reading = request.method in ("GET", "HEAD", "OPTIONS")
    sessions = runtime.read_sessions if reading else runtime.sessions
    async with sessions() as session:
        try:
            yield session
            if not reading:
                await session.commit()
        except BaseException:
            await session.rollback()
            raise
    if session.info.get("events_recorded"):
        runtime.dispatcher.wake()


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A read-only session whatever the method: for routes whose writes go elsewhere (the
    intake writer) and must not hold SQLite's write lock meanwhile."""
    async with get_runtime(request).read_sessions() as session:
        yield session


# scope="function": the commit happens before the response is sent, never after.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
ReadSession = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
