"""headers.py: what we write into outbound mail and onto disk cannot be turned against us."""

from __future__ import annotations

import pytest

from frontdesk.channels.email.headers import (
    make_message_id,
    make_reply_address,
    one_line,
    parse_reply_address,
    parse_subject_token,
    safe_header_value,
    sanitize_filename,
    subject_token,
    verify_message_id,
)

SECRET = "test-secret-0123456789abcdef"
OTHER_SECRET = "another-secret-0123456789abcdef"

# --- header injection ----------------------------------------------------------------------


def test_a_plain_header_value_is_returned_unchanged() -> None:
    assert safe_header_value("Re: Заказ №5 — [#42]") == "Re: Заказ №5 — [#42]"


@pytest.mark.parametrize("evil", [
    "Hello\r\nBcc: victim@example.com", "Hello\nBcc: x@y", "Hello\rX: y", "a\x00b",
    "a\u2028b", "a\u2029b", "a\x0bb", "a\x0cb", "a\x85b", "a\x1cb",
])
def test_a_header_value_with_a_line_break_is_refused(evil: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        safe_header_value(evil)


@pytest.mark.parametrize(("decoded", "expected"), [
    ("Evil\r\nBcc: victim@example.com", "Evil Bcc: victim@example.com"),
    ("Ann \x00\u2028 Lee", "Ann Lee"),
    ("\tBob\x85\x0bRoe\u2029", "Bob Roe"),
    ("Zhāng  Wěi", "Zhāng  Wěi"),  # spaces the sender wrote stay
])
def test_decoded_header_text_is_made_one_line(decoded: str, expected: str) -> None:
    assert one_line(decoded) == expected
    assert safe_header_value(one_line(decoded)) == expected


# --- file names ------------------------------------------------------------------------------


def test_a_filename_with_dot_dot_cannot_escape_the_storage_folder() -> None:
    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename("..") == "attachment"
    assert sanitize_filename("../") == "attachment"


def test_an_absolute_path_keeps_only_its_last_component() -> None:
    assert sanitize_filename("/etc/shadow") == "shadow"
    assert sanitize_filename("C:\\Windows\\boot.ini") == "boot.ini"
    assert sanitize_filename("C:boot.ini") == "C_boot.ini"
    assert sanitize_filename("\\\\server\\share\\x.doc") == "x.doc"


@pytest.mark.parametrize("slash", ["\u2215", "\u2044", "\uff0f", "\u29f8", "\uff3c"])
def test_look_alike_slashes_are_path_separators(slash: str) -> None:
    assert sanitize_filename(f"..{slash}..{slash}secret.txt") == "secret.txt"


def test_a_right_to_left_override_cannot_disguise_the_extension() -> None:
    assert sanitize_filename("invoice\u202egpj.exe") == "invoicegpj.exe"


def test_zero_width_and_bidi_characters_are_removed() -> None:
    name = "re\u200bport\u200c\u200d\u2060\ufeff\u2066\u2069\u200e\u200f.pdf"
    assert sanitize_filename(name) == "report.pdf"


def test_names_are_nfkc_normalised() -> None:
    assert sanitize_filename("ｆｕｌｌｗｉｄｔｈ．ｐｄｆ") == "fullwidth.pdf"


def test_hidden_files_and_trailing_dots_are_not_possible() -> None:
    assert sanitize_filename(".htaccess") == "htaccess"
    assert sanitize_filename("report.pdf. . .") == "report.pdf"


def test_windows_device_names_and_forbidden_characters_are_defused() -> None:
    assert sanitize_filename("CON.txt") == "_CON.txt"
    assert sanitize_filename("nul") == "_nul"
    assert sanitize_filename('a<b>c:d"e|f?g*h.txt') == "a_b_c_d_e_f_g_h.txt"


def test_a_long_name_is_capped_and_keeps_its_extension() -> None:
    name = sanitize_filename("x" * 500 + ".pdf")
    assert len(name) <= 150 and name.endswith(".pdf")


def test_a_filename_is_never_empty() -> None:
    for empty in ("", None, "   ", "\u200b", "/", "...", "\\"):
        assert sanitize_filename(empty) == "attachment"
    assert sanitize_filename("", default="image.png") == "image.png"


def test_control_characters_are_removed_and_line_breaks_become_a_space() -> None:
    assert sanitize_filename("a\r\nb\x00c\x1b.txt") == "a bc.txt"
    assert sanitize_filename("Q1\treport.pdf") == "Q1 report.pdf"


def test_ordinary_unicode_names_survive() -> None:
    assert sanitize_filename("Договор на поставку.pdf") == "Договор на поставку.pdf"
    assert sanitize_filename("年度报告.xlsx") == "年度报告.xlsx"
    assert sanitize_filename("تقرير.docx") == "تقرير.docx"


# --- signed Message-IDs -----------------------------------------------------------------------


def test_our_message_id_carries_the_conversation_and_verifies() -> None:
    mid = make_message_id("acme.test", 42, SECRET)
    assert mid.startswith("<fd.42.") and mid.endswith("@acme.test>")
    assert verify_message_id(mid, SECRET) == 42
    assert verify_message_id(mid.strip("<>"), SECRET) == 42  # as stored, without brackets


def test_every_message_id_is_unique() -> None:
    ids = {make_message_id("acme.test", 1, SECRET) for _ in range(200)}
    assert len(ids) == 200


def test_a_forged_message_id_pointing_at_another_conversation_does_not_verify() -> None:
    mid = make_message_id("acme.test", 42, SECRET)
    forged = mid.replace("fd.42.", "fd.43.")
    assert verify_message_id(forged, SECRET) is None


def test_a_message_id_signed_with_another_secret_does_not_verify() -> None:
    mid = make_message_id("acme.test", 42, OTHER_SECRET)
    assert verify_message_id(mid, SECRET) is None


def test_a_message_id_moved_to_another_domain_does_not_verify() -> None:
    mid = make_message_id("acme.test", 42, SECRET)
    assert verify_message_id(mid.replace("acme.test", "evil.test"), SECRET) is None
    assert verify_message_id(mid, SECRET, domain="other.test") is None


def test_a_tampered_mac_or_garbage_does_not_verify() -> None:
    mid = make_message_id("acme.test", 42, SECRET)
    flipped = mid[:-12] + ("a" if mid[-12] != "a" else "b") + mid[-11:]
    for bad in (flipped, "", "<>", "fd.42@acme.test", "x" * 1000, "<abc@gmail.com>"):
        assert verify_message_id(bad, SECRET) is None


def test_message_ids_survive_case_changes_by_mail_servers() -> None:
    mid = make_message_id("acme.test", 7, SECRET)
    assert verify_message_id(mid.upper(), SECRET) == 7


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        make_message_id("acme.test", 1, "short")


def test_a_domain_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError):
        make_message_id("acme.test>\r\nBcc: x@y", 1, SECRET)


# --- plus-addressed reply addresses -------------------------------------------------------------


def test_a_reply_address_carries_the_conversation_and_verifies() -> None:
    address = make_reply_address("support@acme.test", 42, SECRET)
    local = address.split("@")[0]
    assert local.startswith("support+c42.") and len(local) <= 64
    assert parse_reply_address(address, SECRET) == ("support@acme.test", 42)
    assert parse_reply_address(address.upper(), SECRET) == ("support@acme.test", 42)


def test_a_forged_reply_address_does_not_verify() -> None:
    address = make_reply_address("support@acme.test", 42, SECRET)
    assert parse_reply_address(address.replace("+c42.", "+c41."), SECRET) is None
    assert parse_reply_address(address.replace("acme.test", "evil.test"), SECRET) is None
    assert parse_reply_address("support+c42.aaaaaaaaaaaaaaaa@acme.test", SECRET) is None
    assert parse_reply_address("support@acme.test", SECRET) is None


def test_a_message_id_mac_cannot_be_replayed_as_a_reply_address() -> None:
    mid = make_message_id("acme.test", 42, SECRET, nonce="aaaaaaaa")
    mac = mid.strip("<>").split("@")[0].split(".")[-1]
    assert parse_reply_address(f"support+c42.{mac}@acme.test", SECRET) is None


# --- subject tokens -----------------------------------------------------------------------------


def test_the_subject_token_round_trips() -> None:
    assert subject_token(42) == "[#42]"
    assert parse_subject_token("Re: AW: [#42] Printer") == 42
    assert parse_subject_token("Re: [#1] about [#42]") == 42  # the last one is ours
    assert parse_subject_token("Re: ［＃42］ full-width") == 42
    assert parse_subject_token("Order #42") is None
    assert parse_subject_token(None) is None
