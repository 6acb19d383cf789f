"""Sign-in, sign-out, choosing a workspace, and the person's own settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from frontdesk.core.deps import DbSession
from frontdesk.core.errors import InvalidInput
from frontdesk.web import accounts, i18n
from frontdesk.web.i18n import N_
from frontdesk.web.pages import (
    anonymous_locale,
    base_context,
    flash,
    redirect,
    web_router,
)
from frontdesk.web.security import LoginRateLimiter, password_fingerprint
from frontdesk.web.session import (
    CurrentAgent,
    SignedInUser,
    safe_next,
    session_of,
    sign_in,
    sign_out,
)
from frontdesk.web.templating import render

router = web_router()


def _limiter(request: Request) -> LoginRateLimiter:
    limiter: LoginRateLimiter = request.app.state.login_limiter
    return limiter


def _client_ip(request: Request) -> str:
    # Behind a proxy, run uvicorn with --forwarded-allow-ips so this is the real client.
    return request.client.host if request.client else "unknown"


@router.get("/login")
async def login_page(
    request: Request, next: str | None = None, lang: str | None = None
) -> Response:
    session = session_of(request)
    if isinstance(session.get("uid"), int):
        return RedirectResponse(safe_next(next), status_code=303)
    if lang in i18n.LOCALES:
        session["locale"] = lang  # only the sign-in page's language; harmless as a GET
    return render(request, "login.html", base_context(request, None, next=next or "", email="",
                                                       error=None))


@router.post("/login")
async def login(
    request: Request, db: DbSession,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    limiter, ip = _limiter(request), _client_ip(request)
    email = email.strip()

    def again(error: str, status: int, **values: object) -> Response:
        ctx = base_context(request, None, next=next, email=email, error=error,
                           error_values=values)
        return render(request, "login.html", ctx, status_code=status)

    wait = limiter.retry_after(email, ip)
    if wait:
        return again(N_("Too many failed sign-ins. Try again in %(minutes)s min."), 429,
                     minutes=max(1, (wait + 59) // 60))
    if not email or not password:
        return again(N_("Enter your e-mail and password."), 422)
    user = await accounts.authenticate(db, email, password)
    if user is None:
        limiter.failed(email, ip)
        return again(N_("That e-mail and password do not match an account."), 401)
    workspaces = await accounts.list_user_workspaces(db, user.id)
    if not workspaces:
        return again(N_("Your account does not belong to any workspace yet. Ask an admin."), 403)
    limiter.succeeded(email)
    sign_in(request, user, workspaces[0][0].id if len(workspaces) == 1 else None)
    return RedirectResponse(safe_next(next) if len(workspaces) == 1 else "/app/workspaces",
                            status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    locale = session_of(request).get("locale")
    sign_out(request)
    if isinstance(locale, str):
        session_of(request)["locale"] = locale
    return redirect(request, "/app/login")


@router.get("/workspaces")
async def workspaces_page(request: Request, db: DbSession, user: SignedInUser) -> Response:
    items = await accounts.list_user_workspaces(db, user.id)
    ctx = base_context(request, None, user=user, workspaces=items,
                       current=session_of(request).get("ws"))
    ctx["locale"] = i18n.normalize_locale(user.locale)
    return render(request, "workspaces.html", ctx)


@router.post("/workspaces")
async def choose_workspace(
    request: Request, db: DbSession, user: SignedInUser,
    workspace_id: Annotated[int, Form()],
) -> Response:
    items = await accounts.list_user_workspaces(db, user.id)
    if workspace_id not in {ws.id for ws, _ in items}:
        # Not a member (or never was): same answer as an unknown id.
        flash(request, N_("That workspace is not one of yours."), "error")
        return redirect(request, "/app/workspaces")
    session_of(request)["ws"] = workspace_id
    return redirect(request, "/app/inbox")


@router.get("/settings")
async def settings_page(request: Request, agent: CurrentAgent) -> Response:
    return render(request, "settings.html", base_context(
        request, agent, time_zones=accounts.known_time_zones(), errors={}))


@router.post("/settings/preferences")
async def save_preferences(
    request: Request, db: DbSession, agent: CurrentAgent,
    locale: Annotated[str, Form()], time_zone: Annotated[str, Form()],
) -> Response:
    await accounts.set_locale(db, agent.user, locale)
    await accounts.set_time_zone(db, agent.user, time_zone)
    flash(request, N_("Your preferences are saved."))
    return redirect(request, "/app/settings")


@router.post("/settings/password")
async def change_password(
    request: Request, db: DbSession, agent: CurrentAgent,
    current_password: Annotated[str, Form(max_length=1024)] = "",
    new_password: Annotated[str, Form(max_length=1024)] = "",
    confirm_password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    errors: dict[str, str] = {}
    if new_password != confirm_password:
        errors["confirm_password"] = N_("The two new passwords are not the same.")
    else:
        try:
            await accounts.change_password(db, agent.user, agent.workspace.id,
                                           current=current_password, new=new_password)
        except InvalidInput as exc:
            field = "current_password" if exc.code == "wrong_password" else "new_password"
            errors[field] = exc.message
    if errors:
        return render(request, "settings.html", base_context(
            request, agent, time_zones=accounts.known_time_zones(), errors=errors),
            status_code=422)
    # This browser stays signed in; every other one was signed in with the old password.
    session_of(request)["pfp"] = password_fingerprint(agent.user.password_hash)
    flash(request, N_("Your password is changed. Other browsers are signed out."))
    return redirect(request, "/app/settings")


@router.post("/locale")
async def switch_locale(
    request: Request, db: DbSession, agent: CurrentAgent,
    locale: Annotated[str, Form()], back: Annotated[str, Form()] = "",
) -> Response:
    await accounts.set_locale(db, agent.user, locale)
    return redirect(request, safe_next(back))


@router.get("/")
async def app_root(request: Request) -> Response:
    return RedirectResponse("/app/inbox", status_code=303)


__all__ = ["anonymous_locale", "router"]
