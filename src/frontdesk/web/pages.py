"""Helpers every web route shares: the page context, flashes, redirects that work for both
plain requests and htmx, and the CSRF-protected router."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from frontdesk.core.errors import InvalidInput
from frontdesk.notifications.webpush import application_server_key
from frontdesk.web import i18n
from frontdesk.web.security import load_secret_key
from frontdesk.web.session import Agent, csrf_protect, csrf_token, session_of


def web_router() -> APIRouter:
    # include_in_schema=False: the HTML routes are not part of the REST API's contract,
    # and schemathesis and the API docs must not see them.
    return APIRouter(prefix="/app", include_in_schema=False, dependencies=[Depends(csrf_protect)])


def local_time(value: str, agent: Agent, refusal: str, code: str) -> datetime:
    """A `datetime-local` field's value, read in the agent's own time zone (a value with an
    offset keeps it). Unreadable: `InvalidInput(refusal)`, an agent's msgid, with `code`."""
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInput(refusal, code=code) from exc
    if naive.tzinfo is not None:
        return naive
    return naive.replace(tzinfo=agent.tz)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true" and not request.headers.get(
        "hx-history-restore-request")


def htmx_target(request: Request) -> str | None:
    return request.headers.get("hx-target") if is_htmx(request) else None


def redirect(request: Request, url: str) -> Response:
    """303 for a form post; for htmx, HX-Location-free full navigation with HX-Redirect."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """Remember a message (an English msgid) to show on the next page, translated there."""
    session_of(request)["flash"] = {"kind": kind, "message": message}


def pop_flash(request: Request) -> dict[str, str] | None:
    value = session_of(request).pop("flash", None)
    return value if isinstance(value, dict) else None


def anonymous_locale(request: Request) -> str:
    """Before sign-in: the language picked on the sign-in page, else the browser's."""
    chosen = session_of(request).get("locale")
    if isinstance(chosen, str) and chosen in i18n.LOCALES:
        return chosen
    return i18n.negotiate(request.headers.get("accept-language"))


def _push_key(request: Request) -> str:
    """The VAPID key this installation's browsers subscribe to push with."""
    settings = request.app.state.runtime.settings
    return application_server_key(load_secret_key(settings))


def base_context(request: Request, agent: Agent | None, **extra: Any) -> dict[str, Any]:
    locale = agent.locale if agent else anonymous_locale(request)
    tz = agent.tz if agent else UTC

    def when(value: datetime | None, full: bool = False) -> str:
        return i18n.format_when(value, locale, tz, full=full)

    return {
        "agent": agent,
        "csrf": agent.csrf if agent else csrf_token(request),
        # Only a whole page shows (and so consumes) a flash; partials leave it for the page.
        "flash": None if is_htmx(request) else pop_flash(request),
        "locale": locale,
        "when": when,
        "ago": lambda value: i18n.format_ago(value, locale),
        "date": lambda value: i18n.format_date_only(value, locale, tz),
        "num": lambda value: i18n.format_number(value, locale),
        "day_label": lambda value: i18n.day_label(value, locale, tz),
        "push_key": _push_key(request) if agent else "",
        **extra,
    }
