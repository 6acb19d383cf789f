"""The agent workspace: server-rendered pages (Jinja2) with htmx and small plain-JS modules,
served by the same app under /app. `install_web` is the one hook app.py calls."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from frontdesk.config import Settings
from frontdesk.core.errors import FrontdeskError, error_body
from frontdesk.web import i18n
from frontdesk.web.errors import service_error_text
from frontdesk.web.i18n import N_
from frontdesk.web.security import LoginRateLimiter, WebMiddleware, load_secret_key
from frontdesk.web.session import CsrfRejected, LoginRequired, WorkspaceRequired, csrf_token
from frontdesk.web.templating import STATIC_DIR, render

log = logging.getLogger(__name__)

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def install_web(app: FastAPI, settings: Settings) -> None:
    from frontdesk.web.routes_account import router as account_router
    from frontdesk.web.routes_admin import router as admin_router
    from frontdesk.web.routes_canned import router as canned_router
    from frontdesk.web.routes_contacts import router as contacts_router
    from frontdesk.web.routes_conversation_tools import router as conversation_tools_router
    from frontdesk.web.routes_email import router as email_router
    from frontdesk.web.routes_email_admin import router as email_admin_router
    from frontdesk.web.routes_inbox import router as inbox_router
    from frontdesk.web.routes_push import router as push_router
    from frontdesk.web.routes_views import router as views_router

    app.state.login_limiter = LoginRateLimiter()
    app.add_middleware(WebMiddleware, secret_key=load_secret_key(settings),
                       max_age=settings.session_max_age_seconds,
                       https_only=settings.secure_cookies)
    app.mount("/app/static", _Static(directory=STATIC_DIR), name="web-static")
    app.include_router(account_router)
    app.include_router(inbox_router)
    app.include_router(conversation_tools_router)
    app.include_router(email_router)
    app.include_router(canned_router)
    app.include_router(push_router)
    app.include_router(views_router)
    app.include_router(admin_router)
    app.include_router(email_admin_router)
    app.include_router(contacts_router)
    # Starlette types handlers as taking any Exception; each of these gets only its own class.
    app.add_exception_handler(LoginRequired, _login_required)  # type: ignore[arg-type]
    app.add_exception_handler(WorkspaceRequired, _workspace_required)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfRejected, _csrf_rejected)  # type: ignore[arg-type]
    for exc_class in (FrontdeskError, StarletteHTTPException, RequestValidationError, Exception):
        original = app.exception_handlers.get(exc_class)
        if original is not None:
            app.add_exception_handler(exc_class, _html_for_web(original))


class _Static(StaticFiles):
    """Static files carry a content digest in their URL (?v=), so they can be cached long."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


def _is_web(request: Request) -> bool:
    return request.url.path.startswith("/app") and "application/json" not in request.headers.get(
        "accept", "")


def _locale(request: Request) -> str:
    chosen = getattr(request.state, "locale", None)
    if isinstance(chosen, str):
        return chosen
    session = request.scope.get("session") or {}
    if isinstance(session.get("locale"), str) and session["locale"] in i18n.LOCALES:
        return str(session["locale"])
    return i18n.negotiate(request.headers.get("accept-language"))


def _error(request: Request, status: int, message: str, *, code: str,
           details: Any = None) -> Response:
    """An error for a person: a toast for htmx requests, a page otherwise, JSON for JSON.
    The text is the one `web.errors` gives the code, in the person's language."""
    if not _is_web(request):
        return JSONResponse(error_body(code, message), status)
    locale = _locale(request)
    headers = {"HX-Retarget": "#toasts", "HX-Reswap": "beforeend"}
    text = service_error_text(code, message, details, locale)
    ctx = {"status": status, "text": text, "code": code, "agent": None,
           "csrf": csrf_token(request) if "session" in request.scope else "", "flash": None}
    if request.headers.get("hx-request") == "true":
        return render(request, "partials/toast.html", ctx, status_code=status, locale=locale,
                      headers=headers)
    return render(request, "error.html", ctx, status_code=status, locale=locale)


async def _login_required(request: Request, exc: LoginRequired) -> Response:
    if not _is_web(request):
        return JSONResponse(error_body("unauthorized", "Sign in first"), 401)
    url = "/app/login"
    if exc.next_url:
        from urllib.parse import quote

        url += f"?next={quote(exc.next_url, safe='/')}"
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


async def _workspace_required(request: Request, exc: WorkspaceRequired) -> Response:
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": "/app/workspaces"})
    return RedirectResponse("/app/workspaces", status_code=303)


async def _csrf_rejected(request: Request, exc: CsrfRejected) -> Response:
    return _error(request, 403, N_("This form has expired or did not come from Frontdesk. "
                                   "Reload the page and try again."), code="csrf_failed")


def _html_for_web(original: Handler) -> Handler:
    """Keep the API's JSON errors; give people on /app a page or a toast instead."""

    async def handler(request: Request, exc: Any) -> Response:
        if not _is_web(request):
            result = original(request, exc)
            return await result if inspect.isawaitable(result) else result
        if isinstance(exc, FrontdeskError):
            return _error(request, exc.status_code, exc.message, code=exc.code,
                          details=exc.details)
        if isinstance(exc, StarletteHTTPException):
            message = N_("There is nothing here.") if exc.status_code == 404 else str(exc.detail)
            return _error(request, exc.status_code, message, code=str(exc.status_code))
        if isinstance(exc, RequestValidationError):
            return _error(request, 422, N_("Some of what was sent is not valid."),
                          code="validation_error")
        log.exception("unhandled error on a web page", exc_info=exc)
        return _error(request, 500, N_("Something went wrong on our side; it was logged."),
                      code="internal_error")

    return handler


__all__ = ["install_web"]
