"""Re-extract the UI strings and fill in translations from a JSON file, in one step.

    flock /tmp/frontdesk-po.lock .venv/bin/python scripts/add_translations.py new.json

`new.json` maps each English message to its translations:
    {"Saved views": {"ru": "Сохранённые виды", "zh_Hans": "已保存视图", "ar": "طرق العرض المحفوظة"}}

It runs `make messages` (extract into messages.pot, merge into every catalog), then writes
the given translations into ru, zh_Hans and ar, and compiles. Several people (or helper
sessions) adding strings at once serialise on the flock, so no catalog is overwritten.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = ROOT / "src" / "frontdesk" / "web" / "translations"
LOCALES = ("ru", "zh_Hans", "ar")
MAKE = shutil.which("make") or "make"


def main(path: str) -> int:
    wanted: dict[str, dict[str, str]] = json.loads(Path(path).read_text(encoding="utf-8"))
    subprocess.run([MAKE, "-s", "messages"], cwd=ROOT, check=True)  # noqa: S603
    for locale in LOCALES:
        po_path = CATALOGS / locale / "LC_MESSAGES" / "messages.po"
        with po_path.open("rb") as f:
            catalog = read_po(f, locale=locale)
        for msgid, translations in wanted.items():
            if locale not in translations:
                continue
            message = catalog.get(msgid)
            if message is None:
                print(f"not in the sources (yet): {msgid!r}", file=sys.stderr)
                continue
            message.string = translations[locale]
            message.flags.discard("fuzzy")
        with po_path.open("wb") as f:
            write_po(f, catalog, width=100, sort_output=True, omit_header=False)
    subprocess.run([MAKE, "-s", "translations"], cwd=ROOT, check=True)  # noqa: S603
    missing = []
    for locale in LOCALES:
        with (CATALOGS / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
            missing += [(locale, m.id) for m in read_po(f, locale=locale) if m.id and not m.string]
    for locale, msgid in missing:
        print(f"still untranslated in {locale}: {msgid!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
