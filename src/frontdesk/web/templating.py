"""Jinja2 for the web UI: autoescaping always on, gettext from the page's locale, and the
one filter allowed to mark HTML safe (message HTML, re-sanitized by nh3 at render)."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import nh3
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from frontdesk.web import i18n

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

# What a message body may contain. Stored HTML is sanitized on the way in; it is cleaned
# again here because the allow-list of the page is the page's business, and a row written
# by an older version or another tool must not become script in an agent's browser.
MESSAGE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4",
    "hr", "i", "li", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}
MESSAGE_ATTRIBUTES = {"a": {"href", "title"}, "td": {"colspan", "rowspan"},
                      "th": {"colspan", "rowspan"}, "abbr": {"title"}}


def clean_message_html(html: str | None) -> Markup:
    if not html:
        return Markup("")
    cleaned = nh3.clean(
        html, tags=MESSAGE_TAGS, attributes=MESSAGE_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow",
    )
    return Markup(cleaned)  # noqa: S704 - nh3's output is the only HTML marked safe


_ACTIVITY_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Status changed to (?P<status>\w+)$"), i18n.N_("Status changed to %(status)s")),
    (re.compile(r"^Assigned to (?P<names>.+)$"), i18n.N_("Assigned to %(names)s")),
    (re.compile(r"^Merged into #(?P<id>\d+)$"), i18n.N_("Merged into #%(id)s")),
    (re.compile(r"^Merged #(?P<id>\d+) into this$"),
     i18n.N_("Merged #%(id)s into this conversation")),
    (re.compile(r"^Split into #(?P<id>\d+)$"), i18n.N_("Split into #%(id)s")),
    (re.compile(r"^Split from #(?P<id>\d+)$"), i18n.N_("Split from #%(id)s")),
    (re.compile(r"^Moved messages to #(?P<id>\d+)$"), i18n.N_("Moved messages to #%(id)s")),
    (re.compile(r"^Moved messages here from #(?P<id>\d+)$"),
     i18n.N_("Moved messages here from #%(id)s")),
]
STATUS_LABELS = {
    "open": i18n.N_("Open"), "pending": i18n.N_("Pending"), "snoozed": i18n.N_("Snoozed"),
    "resolved": i18n.N_("Resolved"), "closed": i18n.N_("Closed"),
}
PRIORITY_LABELS = {
    "none": i18n.N_("No priority"), "low": i18n.N_("Low"), "medium": i18n.N_("Medium"),
    "high": i18n.N_("High"), "urgent": i18n.N_("Urgent"),
}
IDENTITY_LABELS = {"email": i18n.N_("E-mail"), "phone": i18n.N_("Phone"),
                   "external": i18n.N_("External ID")}
CHANNEL_LABELS = {"api": i18n.N_("API"), "email": i18n.N_("E-mail")}
ROLE_LABELS = {"agent": i18n.N_("Agent"), "supervisor": i18n.N_("Supervisor"),
               "admin": i18n.N_("Admin")}
DELIVERY_LABELS = {
    "received": i18n.N_("Received"), "pending": i18n.N_("Sending…"), "sent": i18n.N_("Sent"),
    "delivered": i18n.N_("Delivered"), "read": i18n.N_("Read"), "failed": i18n.N_("Not delivered"),
}


def activity_text(content: str) -> str:
    """Activity lines are stored as English sentences by the services; show the known ones
    in the reader's language (a structured activity payload would make this unnecessary)."""
    if content == "Unassigned":
        return i18n.gettext_("Unassigned")
    for pattern, message in _ACTIVITY_PATTERNS:
        match = pattern.match(content)
        if match:
            values = match.groupdict()
            if "status" in values:
                values["status"] = i18n.gettext_(STATUS_LABELS.get(values["status"],
                                                                   values["status"]))
            return i18n.gettext_(message) % values
    return content


def initials(name: str) -> str:
    parts = [p for p in re.split(r"[\s@._-]+", name.strip()) if p]
    if not parts:
        return "?"
    if len(parts) == 1 or not parts[0][:1].isascii():
        return parts[0][:2].upper() if parts[0][:1].isascii() else parts[0][:1]
    return (parts[0][:1] + parts[1][:1]).upper()


def avatar_class(key: int | str) -> str:
    digest = hashlib.blake2s(str(key).encode(), digest_size=1).digest()[0]
    return f"av-{digest % 8}"


@cache
def static_version() -> str:
    """A digest of the static files, appended to their URLs: browsers may cache them for a
    year and still get a new version the moment one changes."""
    h = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def static_url(path: str) -> str:
    return f"/app/static/{path}?v={static_version()}"


def query(params: dict[str, Any], **changes: Any) -> str:
    """A query string of `params` with `changes`; empty values are left out."""
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "", [])}, doseq=True)


def _make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every {{ }} is escaped; only clean_message_html returns Markup
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext_, i18n.ngettext_, newstyle=True
    )
    env.globals.update(static_url=static_url, query=query, LOCALES=i18n.LOCALES,
                       STATUS_LABELS=STATUS_LABELS, PRIORITY_LABELS=PRIORITY_LABELS,
                       DELIVERY_LABELS=DELIVERY_LABELS, ROLE_LABELS=ROLE_LABELS,
                       IDENTITY_LABELS=IDENTITY_LABELS, CHANNEL_LABELS=CHANNEL_LABELS)
    env.filters.update(message_html=clean_message_html, initials=initials,
                       avatar_class=avatar_class, activity_text=activity_text)
    return env


env = _make_env()


def render(request: Request, template: str, context: dict[str, Any], *, status_code: int = 200,
           locale: str | None = None, headers: dict[str, str] | None = None) -> HTMLResponse:
    locale = locale or context.get("locale") or i18n.DEFAULT_LOCALE
    token = i18n.current_locale.set(locale)
    try:
        html = env.get_template(template).render({
            **context, "request": request, "locale": locale, "lang": i18n.html_lang(locale),
            "dir": i18n.text_direction(locale),
        })
    finally:
        i18n.current_locale.reset(token)
    return HTMLResponse(html, status_code=status_code, headers=headers)
