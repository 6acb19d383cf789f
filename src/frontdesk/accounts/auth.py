"""Who is calling: API tokens (Authorization: Bearer) resolved to a Principal.

Resolved tokens are cached for a few seconds: intake runs at thousands of requests per
second and must not pay a database round trip for each. A revoked token stops working
within TOKEN_CACHE_SECONDS everywhere, and at once in the process that revoked it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import Depends, Request

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal, hash_token, principal_for_token
from frontdesk.core.deps import get_runtime
from frontdesk.core.errors import Forbidden, Unauthorized

TOKEN_CACHE_SECONDS = 10.0
_cache: dict[str, tuple[float, Principal]] = {}
# Lookups under way, by token hash: when an entry expires under load, the requests that
# all find it missing at once share one lookup instead of each making its own (32 of them
# queued on the database every ten seconds, which was visible in intake's p99).
_lookups: dict[str, asyncio.Task[Principal | None]] = {}
# Bumped by forget_cached_tokens(): a lookup that started before a revocation must not
# put what it read back into the cache after it.
_generation = 0


def forget_cached_tokens() -> None:
    global _generation
    _generation += 1
    _cache.clear()


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def resolve_token(request: Request, token: str) -> Principal | None:
    key = hash_token(token)
    hit = _cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    lookup = _lookups.get(key)
    if lookup is None or lookup.get_loop() is not asyncio.get_running_loop():
        lookup = asyncio.ensure_future(_look_up(request, token, key))
        _lookups[key] = lookup
        lookup.add_done_callback(lambda done: _lookups.pop(key, None)
                                 if _lookups.get(key) is done else None)
    # Shielded: a caller that goes away (its client hung up) does not cancel the lookup
    # the others are waiting for.
    return await asyncio.shield(lookup)


async def _look_up(request: Request, token: str, key: str) -> Principal | None:
    generation = _generation
    started = time.monotonic()
    async with get_runtime(request).read_sessions() as session:
        principal = await principal_for_token(session, token)
    if principal is not None and generation == _generation:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[key] = (started + TOKEN_CACHE_SECONDS, principal)
    return principal


async def current_principal(request: Request) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("Send an API token: Authorization: Bearer <token>")
    principal = await resolve_token(request, token)
    if principal is None:
        raise Unauthorized("This API token is unknown or revoked")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(role: Role):  # type: ignore[no-untyped-def]
    async def _check(principal: CurrentPrincipal) -> Principal:
        if not principal.role.at_least(role):
            raise Forbidden(f"This needs the {role.value} role; you are {principal.role.value}")
        return principal

    return Depends(_check)


AdminPrincipal = Annotated[Principal, require_role(Role.ADMIN)]
SupervisorPrincipal = Annotated[Principal, require_role(Role.SUPERVISOR)]
