"""Who is using the web UI: the signed session cookie resolved, on every request, to a
person, a workspace they are still a member of, and their role there.

Nothing is trusted from the cookie beyond the ids: the membership and the role are read from
the database each time, so removing someone from a workspace or changing their role takes
effect on their next click, and a password change signs out their other browsers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import tzinfo
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from frontdesk.accounts.models import Role, User, Workspace
from frontdesk.accounts.service import Principal
from frontdesk.core.deps import DbSession
from frontdesk.runtime import Runtime
from frontdesk.web import accounts, i18n
from frontdesk.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    csrf_matches,
    new_csrf_token,
    password_fingerprint,
    same_origin,
)

log = logging.getLogger(__name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(Exception):
    def __init__(self, next_url: str | None = None, reason: str | None = None) -> None:
        super().__init__("sign-in required")
        self.next_url = next_url
        self.reason = reason


class WorkspaceRequired(Exception):
    """Signed in, but no (longer a) member of a chosen workspace: pick one."""


class CsrfRejected(Exception):
    pass


def session_of(conn: HTTPConnection) -> dict[str, Any]:
    session: dict[str, Any] = conn.scope["session"]
    return session


def csrf_token(conn: HTTPConnection) -> str:
    """The session's CSRF token, created on first use."""
    session = session_of(conn)
    token = session.get("csrf")
    if not isinstance(token, str):
        token = new_csrf_token()
        session["csrf"] = token
    return token


async def csrf_protect(request: Request) -> None:
    """Every state-changing request of the web UI carries the session's token: forms in a
    hidden field, htmx in the X-CSRF-Token header (set once on <body> with hx-headers).
    SameSite=Lax already keeps the cookie off most cross-site posts; the token covers the
    rest (same-site subdomains, older browsers, top-level POST navigations)."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = session_of(request).get("csrf")
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not csrf_matches(expected if isinstance(expected, str) else None, given):
        log.info("refused a web request without a valid CSRF token: %s %s",
                 request.method, request.url.path)
        raise CsrfRejected()


def sign_in(conn: HTTPConnection, user: User, workspace_id: int | None) -> None:
    """A fresh session: nothing from before sign-in is kept (no session fixation), and a
    new CSRF token is issued."""
    session = session_of(conn)
    locale = session.get("locale")
    session.clear()
    session.update({"uid": user.id, "ws": workspace_id,
                    "pfp": password_fingerprint(user.password_hash), "csrf": new_csrf_token()})
    if isinstance(locale, str):
        session["locale"] = locale


def sign_out(conn: HTTPConnection) -> None:
    session_of(conn).clear()


@dataclass
class Agent:
    """The signed-in person acting in one workspace."""

    user: User
    role: Role
    workspace: Workspace
    workspaces: list[tuple[Workspace, Role]]
    csrf: str

    @property
    def principal(self) -> Principal:
        return Principal(user_id=self.user.id, workspace_id=self.workspace.id, role=self.role)

    @property
    def locale(self) -> str:
        return i18n.normalize_locale(self.user.locale)

    @property
    def tz(self) -> tzinfo:
        return i18n.zone(self.user.time_zone)

    @property
    def is_supervisor(self) -> bool:
        return self.role.at_least(Role.SUPERVISOR)


async def signed_in_user(request: Request, db: DbSession) -> User:
    session = session_of(request)
    uid = session.get("uid")
    if not isinstance(uid, int):
        raise LoginRequired(_next_url(request))
    user = await accounts.get_user(db, uid)
    if user is None or session.get("pfp") != password_fingerprint(user.password_hash):
        sign_out(request)
        raise LoginRequired(_next_url(request), reason="expired")
    request.state.locale = i18n.normalize_locale(user.locale)
    return user


SignedInUser = Annotated[User, Depends(signed_in_user)]


async def current_agent(request: Request, db: DbSession, user: SignedInUser) -> Agent:
    session = session_of(request)
    workspaces = await accounts.list_user_workspaces(db, user.id)
    chosen = session.get("ws")
    # A link into one workspace (a push notification's, a colleague's) carries `?ws=`:
    # opening it switches to that workspace if it is one of the person's own, so the link
    # works from any workspace without a 404. Any other value is ignored.
    wanted = request.query_params.get("ws", "")
    if request.method == "GET" and wanted.isdigit() and int(wanted) in {
            w.id for w, _ in workspaces}:
        chosen = session["ws"] = int(wanted)
    for workspace, role in workspaces:
        if workspace.id == chosen:
            return Agent(user=user, role=role, workspace=workspace, workspaces=workspaces,
                         csrf=csrf_token(request))
    if len(workspaces) == 1:  # the common case: one workspace, nothing to choose
        session["ws"] = workspaces[0][0].id
        return Agent(user=user, role=workspaces[0][1], workspace=workspaces[0][0],
                     workspaces=workspaces, csrf=csrf_token(request))
    session.pop("ws", None)
    raise WorkspaceRequired()


CurrentAgent = Annotated[Agent, Depends(current_agent)]


def _next_url(request: Request) -> str | None:
    if request.method != "GET" or request.headers.get("hx-request"):
        return None
    path = request.url.path
    return path + (f"?{request.url.query}" if request.url.query else "")


def safe_next(value: str | None) -> str:
    """Only a path on this site: an open redirect after sign-in is a phishing tool."""
    if value and value.startswith("/app/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/app/inbox"


async def websocket_principal(conn: HTTPConnection) -> Principal | None:
    """The principal of a browser's real-time socket, from its session cookie; None when
    there is no valid session, it is no longer a member, or the Origin is another site."""
    session = conn.scope.get("session")
    if not session or not isinstance(session.get("uid"), int) or not isinstance(
            session.get("ws"), int):
        return None
    host = conn.headers.get("host", "")
    if not same_origin(conn.headers, scheme=conn.url.scheme, host=host):
        log.warning("refused a real-time socket from origin %s", conn.headers.get("origin"))
        return None
    runtime: Runtime = conn.app.state.runtime
    async with runtime.read_sessions() as db:
        user = await accounts.get_user(db, session["uid"])
        if user is None or session.get("pfp") != password_fingerprint(user.password_hash):
            return None
        for workspace, role in await accounts.list_user_workspaces(db, user.id):
            if workspace.id == session["ws"]:
                return Principal(user_id=user.id, workspace_id=workspace.id, role=role)
    return None
