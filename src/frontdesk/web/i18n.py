"""Languages of the web UI: Babel message catalogs, the user's locale, dates and numbers.

Catalogs live in web/translations/<locale>/LC_MESSAGES/messages.po. `make translations`
compiles them to .mo; when a .mo is missing or older than its .po (a fresh clone, an
installed wheel without compiled catalogs) the .po is compiled in memory at first use, so
the UI is never silently English because a build step was skipped.
"""

from __future__ import annotations

import gettext
import io
import logging
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_datetime, format_skeleton, format_time, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

log = logging.getLogger(__name__)

TRANSLATIONS_DIR = Path(__file__).parent / "translations"
DOMAIN = "messages"
DEFAULT_LOCALE = "en"
# Each language is shown in itself, so a person who cannot read the current UI finds theirs.
LOCALES: dict[str, str] = {
    "en": "English",
    "ru": "Русский",
    "zh_Hans": "简体中文",
    "ar": "العربية",
}
RTL_LOCALES = frozenset({"ar"})


def N_(message: str) -> str:
    """Marks a string for extraction; it is translated where it is shown."""
    return message


N_("Today")
N_("Yesterday")


def normalize_locale(value: str | None) -> str:
    """Map what a user row or an Accept-Language header says onto a supported locale."""
    if not value:
        return DEFAULT_LOCALE
    value = value.strip().replace("-", "_")
    if value in LOCALES:
        return value
    lowered = value.lower()
    if lowered.startswith("zh"):
        # zh, zh_CN, zh_SG and zh_Hans are simplified; Traditional is not offered yet.
        return "zh_Hans" if not any(t in lowered for t in ("hant", "_tw", "_hk", "_mo")) else "en"
    base = lowered.split("_", 1)[0]
    return base if base in LOCALES else DEFAULT_LOCALE


def negotiate(accept_language: str | None) -> str:
    """The best supported locale for an Accept-Language header (used before sign-in)."""
    if not accept_language:
        return DEFAULT_LOCALE
    choices: list[tuple[float, int, str]] = []
    for n, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and tag != "*":
            choices.append((-q, n, tag))
    for _, _, tag in sorted(choices):
        locale = normalize_locale(tag)
        if locale != DEFAULT_LOCALE or tag.lower().startswith("en"):
            return locale
    return DEFAULT_LOCALE


def html_lang(locale: str) -> str:
    return locale.replace("_", "-")


def text_direction(locale: str) -> str:
    return "rtl" if locale in RTL_LOCALES else "ltr"


@cache
def babel_locale(locale: str) -> Locale:
    return Locale.parse(locale)


@cache
def translations(locale: str) -> gettext.NullTranslations:
    if locale == DEFAULT_LOCALE or locale not in LOCALES:
        return gettext.NullTranslations()
    folder = TRANSLATIONS_DIR / locale / "LC_MESSAGES"
    po, mo = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as f:
            return gettext.GNUTranslations(f)
    if not po.exists():
        log.warning("no message catalog for %s; showing English", locale)
        return gettext.NullTranslations()
    log.info("compiling %s in memory (run `make translations` to build the .mo)", po)
    with po.open("rb") as f:
        catalog = read_po(f, locale=locale, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


# The locale of the page being rendered. Jinja's gettext callables are installed once on the
# shared environment and read this, so concurrent requests in different languages never
# see each other's translations.
current_locale: ContextVar[str] = ContextVar("current_locale", default=DEFAULT_LOCALE)


def gettext_(message: str) -> str:
    return translations(current_locale.get()).gettext(message)


def ngettext_(singular: str, plural: str, n: int) -> str:
    return translations(current_locale.get()).ngettext(singular, plural, n)


def translate(locale: str, message: str) -> str:
    return translations(locale).gettext(message)


def zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def format_when(value: datetime | None, locale: str, tz: tzinfo, *, now: datetime | None = None,
                full: bool = False) -> str:
    """A date for people, in their zone and language: today's show the time only, this
    year's the day and month, older ones the year too; `full` for tooltips."""
    if value is None:
        return ""
    loc = babel_locale(locale)
    if full:
        return format_datetime(value, "medium", tzinfo=tz, locale=loc)
    now = now or datetime.now(UTC)
    local, local_now = value.astimezone(tz), now.astimezone(tz)
    if local.date() == local_now.date():
        return format_time(value, "short", tzinfo=tz, locale=loc)
    skeleton = "MMMd" if local.year == local_now.year else "yMMMd"
    return format_skeleton(skeleton, value, tzinfo=tz, locale=loc)


def format_date_only(value: datetime, locale: str, tz: tzinfo) -> str:
    return format_skeleton("yMMMd", value, tzinfo=tz, locale=babel_locale(locale))


def day_label(value: datetime, locale: str, tz: tzinfo, *, now: datetime | None = None) -> str:
    """The heading of a day in a thread: Today, Yesterday, or the date."""
    now = now or datetime.now(UTC)
    day, today = value.astimezone(tz).date(), now.astimezone(tz).date()
    if day == today:
        return translate(locale, "Today")
    if (today - day).days == 1:
        return translate(locale, "Yesterday")
    skeleton = "MMMMEEEEd" if day.year == today.year else "yMMMMd"
    return format_skeleton(skeleton, value, tzinfo=tz, locale=babel_locale(locale))


def format_ago(value: datetime | None, locale: str, *, now: datetime | None = None) -> str:
    """'5 min', '3 h', '2 d': how long since the last activity, in the user's language."""
    if value is None:
        return ""
    delta = (now or datetime.now(UTC)) - value
    return format_timedelta(max(delta, timedelta(minutes=1)), threshold=1.0, format="narrow",
                            locale=babel_locale(locale))


def format_number(value: int, locale: str) -> str:
    return format_decimal(value, locale=babel_locale(locale))
