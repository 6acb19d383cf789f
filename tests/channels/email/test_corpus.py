"""Every raw message in tests/data/mail/ parses to what its NAME.expected.json says.

The corpus is written by tests/data/mail/make_corpus.py (which documents every key);
this test reads only the committed files, so a message can also be added by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from frontdesk.channels.email import ParsedEmail, parse_email

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mail"
MESSAGES = sorted(CORPUS.glob("*.eml"))


def _expected(path: Path) -> dict[str, Any]:
    sidecar = path.with_suffix(".expected.json")
    return dict(json.loads(sidecar.read_text("utf-8")))


def _names(parsed: ParsedEmail) -> list[str]:
    return [a.filename for a in parsed.attachments]


def check(parsed: ParsedEmail, exp: dict[str, Any]) -> None:
    for key, want in exp.items():
        where = f"[{key}]"
        if key == "subject":
            assert parsed.subject == want, where
        elif key == "subject_contains":
            for s in want:
                assert s in parsed.subject, (where, s, parsed.subject)
        elif key == "from":
            assert parsed.from_ is not None, where
            assert [parsed.from_.name, parsed.from_.address] == want, where
        elif key in ("to", "cc", "reply_to"):
            assert [a.address for a in getattr(parsed, key)] == want, where
        elif key == "cc_names":
            assert [a.name for a in parsed.cc] == want, where
        elif key == "delivered_to":
            assert list(parsed.delivered_to) == want, where
        elif key == "message_id":
            assert parsed.message_id == want, where
        elif key == "message_id_synthesized":
            assert parsed.message_id_synthesized is want, where
        elif key == "in_reply_to":
            assert parsed.in_reply_to == want, where
        elif key == "references":
            assert list(parsed.references) == want, where
        elif key == "date":
            assert (parsed.date.isoformat() if parsed.date else None) == want, where
        elif key == "text_contains":
            for s in want:
                assert s in parsed.text, (where, s, parsed.text)
        elif key == "text_not_contains":
            for s in want:
                assert s not in parsed.text, (where, s)
        elif key == "new_text":
            assert parsed.new_text == want, (where, parsed.new_text)
        elif key == "new_text_contains":
            for s in want:
                assert s in parsed.new_text, (where, s, parsed.new_text)
        elif key == "new_text_not_contains":
            for s in want:
                assert s not in parsed.new_text, (where, s, parsed.new_text)
        elif key == "quoted_contains":
            for s in want:
                assert s in parsed.quoted_text, (where, s, parsed.quoted_text)
        elif key == "html_contains":
            assert parsed.html_sanitized is not None, where
            for s in want:
                assert s in parsed.html_sanitized, (where, s, parsed.html_sanitized)
        elif key == "html_not_contains":
            html = (parsed.html_sanitized or "").lower()
            for s in want:
                assert s.lower() not in html, (where, s, parsed.html_sanitized)
        elif key == "html_is_none":
            assert (parsed.html_sanitized is None) is want, where
        elif key == "attachments":
            assert _names(parsed) == want, where
        elif key == "attachment_types":
            types = {a.filename: a.content_type for a in parsed.attachments}
            assert {k: types.get(k) for k in want} == want, where
        elif key == "inline_cids":
            assert [a.content_id for a in parsed.attachments if a.inline] == want, where
        elif key == "not_loaded":
            assert [a.filename for a in parsed.attachments if not a.loaded] == want, where
        elif key == "is_calendar":
            assert parsed.is_calendar is want, where
        elif key == "calendar_method":
            assert parsed.calendar_method == want, where
        elif key == "is_bounce":
            assert parsed.is_bounce is want, where
        elif key.startswith("bounce_"):
            assert parsed.bounce is not None, where
            b = parsed.bounce
            if key == "bounce_original_message_id":
                assert b.original_message_id == want, where
            elif key == "bounce_status":
                assert [r.status for r in b.recipients][:1] == [want], (where, b)
            elif key == "bounce_recipient":
                assert [r.recipient for r in b.recipients][:1] == [want], (where, b)
            elif key == "bounce_standard":
                assert b.standard is want, where
            elif key == "bounce_diagnostic_contains":
                assert want in (b.recipients[0].diagnostic_code or ""), (where, b)
            else:
                raise AssertionError(f"unknown expectation {key}")
        elif key == "automatic_kind":
            assert parsed.automatic_kind == want, (where, parsed.automatic_reasons)
            assert parsed.is_automatic is (want is not None), where
        elif key == "suppress_auto_reply":
            assert parsed.suppress_auto_reply is want, where
        elif key == "defects":
            assert bool(parsed.defects) is want, (where, parsed.defects)
        elif key == "defects_contain":
            for s in want:
                assert any(s in d for d in parsed.defects), (where, s, parsed.defects)
        elif key == "charset_note":
            assert any(want in d for d in parsed.defects), (where, parsed.defects)
        elif key == "list_id":
            assert parsed.list_id == want, where
        elif key == "forwarded":
            assert [f.as_json() for f in parsed.forwarded] == want, where
        elif key == "max_attachment_bytes":
            pass  # a setting of the parse (below), not an expectation
        else:
            raise AssertionError(f"unknown expectation {key} (see make_corpus.py)")


def test_the_corpus_has_at_least_sixty_messages_each_with_expectations() -> None:
    assert len(MESSAGES) >= 60
    for path in MESSAGES:
        assert path.with_suffix(".expected.json").exists(), path.name


@pytest.mark.parametrize("path", MESSAGES, ids=[p.stem for p in MESSAGES])
def test_corpus_message_parses_as_expected(path: Path) -> None:
    expected = _expected(path)
    limit = expected.get("max_attachment_bytes")
    parsed = parse_email(path.read_bytes(), **(
        {"max_attachment_bytes": limit} if limit is not None else {}))
    check(parsed, expected)
    # Invariants of every parse.
    assert parsed.message_id
    if parsed.text.strip():
        assert parsed.new_text.strip(), "new_text is never empty when the mail has text"
    for a in parsed.attachments:
        assert a.filename and "/" not in a.filename and "\\" not in a.filename
        assert not a.filename.startswith(".")


def test_the_committed_corpus_matches_its_generator() -> None:
    result = subprocess.run(
        [sys.executable, str(CORPUS / "make_corpus.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
