"""Languages and the session key: catalogs complete and current, compiled even when the
build step was skipped, dates in the reader's zone and language; the key made once, private."""

from __future__ import annotations

import io
import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from frontdesk.config import Settings
from frontdesk.web import i18n
from frontdesk.web.security import load_secret_key

WEB = Path(i18n.__file__).parent
TRANSLATED = [code for code in i18n.LOCALES if code != i18n.DEFAULT_LOCALE]


def _source_messages() -> set[str]:
    """What the templates and Python ask to translate, extracted as `make messages` does."""
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found: set[str] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(WEB), method_map, options, keywords={"_": None, "gettext": None,
                                                 "ngettext": (1, 2), "N_": None},
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_the_template_catalog_is_up_to_date_with_the_sources() -> None:
    with (WEB / "translations" / "messages.pot").open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    missing = _source_messages() - template
    assert not missing, f"run `make messages` and translate: {sorted(missing)}"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_string_is_translated(locale: str) -> None:
    with (WEB / "translations" / "messages.pot").open("rb") as f:
        wanted = {m.id for m in read_po(f) if m.id}
    with (WEB / "translations" / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale=locale)
    done = {m.id for m in catalog if m.id and m.string and "fuzzy" not in m.flags}
    assert wanted - done == set()
    for message in catalog:  # placeholders survive translation
        if message.id and isinstance(message.id, str):
            for placeholder in ("%(name)s", "%(names)s", "%(status)s", "{name}", "%(date)s"):
                if placeholder in message.id:
                    assert placeholder in message.string, (locale, message.id)


def test_a_missing_compiled_catalog_is_compiled_in_memory(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    source = WEB / "translations" / "ru" / "LC_MESSAGES" / "messages.po"
    target = tmp_path / "ru" / "LC_MESSAGES"
    target.mkdir(parents=True)
    shutil.copy(source, target / "messages.po")  # no .mo beside it
    monkeypatch.setattr(i18n, "TRANSLATIONS_DIR", tmp_path)
    i18n.translations.cache_clear()
    try:
        assert i18n.translate("ru", "Sign out") == "Выйти"
        assert i18n.translate("ru", "not in the catalog") == "not in the catalog"
    finally:
        i18n.translations.cache_clear()


def test_locales_are_negotiated_from_what_browsers_send() -> None:
    assert i18n.negotiate("ar-EG,ar;q=0.9,en;q=0.5") == "ar"
    assert i18n.negotiate("zh-CN,zh;q=0.9") == "zh_Hans"
    assert i18n.negotiate("zh-TW") == "en"  # Traditional Chinese is not offered yet
    assert i18n.negotiate("de-DE, ru;q=0.4") == "ru"
    assert i18n.negotiate("") == "en"
    assert i18n.text_direction("ar") == "rtl" and i18n.html_lang("zh_Hans") == "zh-Hans"


def test_dates_are_shown_in_the_readers_zone_and_language() -> None:
    now = datetime(2030, 3, 10, 12, 0, tzinfo=UTC)
    moment = datetime(2030, 3, 10, 22, 30, tzinfo=UTC)  # 10:30 PM in UTC, next day in Tokyo
    tokyo, new_york = i18n.zone("Asia/Tokyo"), i18n.zone("America/New_York")
    assert i18n.format_when(moment, "en", new_york, now=now) == "6:30\u202fPM"
    assert i18n.format_when(moment, "ru", tokyo, now=now) == "11 мар."
    assert i18n.format_when(moment, "zh_Hans", tokyo, now=now) == "3月11日"
    assert i18n.day_label(moment, "ar", new_york, now=now) == "اليوم"
    assert i18n.zone("Not/AZone") is UTC


def test_the_session_key_is_generated_once_and_only_the_owner_can_read_it(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = load_secret_key(settings)
    again = load_secret_key(settings)
    path = tmp_path / "data" / "secret.key"
    assert first == again and len(first) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret_key(Settings(data_dir=tmp_path, secret_key="from-the-environment")) \
        == "from-the-environment"
    path.write_text("short")
    with pytest.raises(RuntimeError, match="delete it"):
        load_secret_key(settings)


def test_catalog_files_parse_cleanly() -> None:
    for locale in TRANSLATED:
        data = (WEB / "translations" / locale / "LC_MESSAGES" / "messages.po").read_bytes()
        catalog = read_po(io.BytesIO(data), locale=locale)
        assert catalog.locale_identifier == locale
