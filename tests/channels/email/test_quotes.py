"""quotes.split_reply: the customer's new words, without history and signature."""

from __future__ import annotations

import pytest

from frontdesk.channels.email.quotes import split_reply

QUOTE = "> Hello,\n> please restart the printer.\n"


@pytest.mark.parametrize("attribution", [
    "On Mon, Jan 15, 2024 at 10:00 AM Acme Support <support@acme.test> wrote:",
    "On 15.01.24 10:00, Acme Support wrote:",
    "On Jan 15, 2024, at 10:00, Acme Support <support@acme.test> wrote:",
    "Am Mo., 15. Jan. 2024 um 10:00 Uhr schrieb Acme <support@acme.test>:",
    "Le lun. 15 janv. 2024 à 10:00, Acme <support@acme.test> a écrit :",
    "El lun, 15 ene 2024 a las 10:00, Acme (<support@acme.test>) escribió:",
    "Il giorno lun 15 gen 2024 alle ore 10:00 Acme <support@acme.test> ha scritto:",
    "Em seg., 15 de jan. de 2024 às 10:00, Acme <support@acme.test> escreveu:",
    "Op ma 15 jan. 2024 om 10:00 schreef Acme <support@acme.test>:",
    "15.01.2024 10:00, Acme Support пишет:",
    "15 января 2024 г., в 10:00, Acme Support написал(а):",
    "пн, 15 янв. 2024 г. в 10:00, Acme Support <support@acme.test>:",
    "Acme Support <support@acme.test> 于2024年1月15日周一 10:00写道：",
    "2024年1月15日(月) 10:00 Acme Support <support@acme.test>:",
    "في الاثنين، 15 يناير 2024 في 10:00 ص كتب Acme Support <support@acme.test>:",
    "W dniu 15.01.2024 o 10:00, Acme <support@acme.test> pisze:",
])
def test_an_attribution_line_starts_the_quoted_history(attribution: str) -> None:
    new, quoted = split_reply(f"My new words.\n\n{attribution}\n{QUOTE}", None)
    assert new == "My new words."
    assert "please restart the printer" in quoted


def test_a_gmail_attribution_wrapped_over_two_lines_is_recognised() -> None:
    text = ("Thanks!\n\nOn Mon, Jan 15, 2024 at 10:00 AM Acme Support Department <\n"
            "support@acme.test> wrote:\n\n" + QUOTE)
    assert split_reply(text, None)[0] == "Thanks!"


@pytest.mark.parametrize("separator", [
    "-----Original Message-----", "----- Original Message -----",
    "-----Ursprüngliche Nachricht-----", "-----Message d'origine-----",
    "-----Исходное сообщение-----", "---------- Forwarded message ---------",
    "-------- Original Message --------", "Begin forwarded message:",
])
def test_an_original_message_separator_starts_the_history(separator: str) -> None:
    new, quoted = split_reply(f"See below.\n\n{separator}\nFrom: x\n\nOld text\n", None)
    assert new == "See below."
    assert "Old text" in quoted


@pytest.mark.parametrize("block", [
    "From: Acme <s@acme.test>\nSent: Monday, January 15, 2024 10:00\nTo: Jane\nSubject: X",
    "*From:* Acme <s@acme.test>\n*Sent:* Monday\n*To:* Jane\n*Subject:* X",
    "Von: Acme <s@acme.test>\nGesendet: Montag\nAn: Jane\nBetreff: X",
    "De : Acme <s@acme.test>\nEnvoyé : lundi\nÀ : Jane\nObjet : X",
    "От: Acme <s@acme.test>\nОтправлено: 15 января\nКому: Jane\nТема: X",
    "发件人: Acme <s@acme.test>\n发送时间: 2024年1月15日\n收件人: Jane\n主题: X",
    "من: Acme <s@acme.test>\nتاريخ: 15 يناير\nإلى: Jane\nالموضوع: X",
    "________________________________\nFrom: Acme <s@acme.test>\nSent: Monday\nTo: Jane",
])
def test_an_outlook_header_block_starts_the_history(block: str) -> None:
    new, quoted = split_reply(f"Fixed, thanks.\n\n{block}\n\nOld text\n", None)
    assert new == "Fixed, thanks."
    assert "Old text" in quoted


def test_a_line_starting_with_from_in_the_customers_text_is_not_a_header_block() -> None:
    text = "From: my home office I cannot print.\nIt says error 5.\n"
    assert split_reply(text, None)[0] == text.strip()


def test_the_signature_after_dash_dash_space_is_removed() -> None:
    new, quoted = split_reply("Please close it.\n\n-- \nJane\n+1 555 0100\n", None)
    assert new == "Please close it."
    assert quoted.startswith("-- ")


@pytest.mark.parametrize("footer", [
    "Sent from my iPhone", "Sent from my Galaxy", "Get Outlook for iOS",
    "Sent from Mail for Windows", "Von meinem iPhone gesendet", "Envoyé de mon iPhone",
    "Отправлено с iPhone", "发自我的iPhone", "أرسلت من الـ iPhone", "Enviado desde mi iPhone",
])
def test_mobile_footers_are_removed(footer: str) -> None:
    assert split_reply(f"On my way.\n\n{footer}\n", None)[0] == "On my way."


def test_trailing_quoted_lines_are_history_but_interleaved_answers_are_kept() -> None:
    text = "> Which model?\nThe X200.\n\n> Since when?\nMarch.\n\n> Acme Support\n> Team\n"
    new, quoted = split_reply(text, None)
    assert "The X200." in new and "March." in new and "> Which model?" in new
    assert "Acme Support" not in new
    assert quoted == "> Acme Support\n> Team"


def test_new_text_is_never_empty_when_the_mail_has_text() -> None:
    only_quote = "On Mon, Jan 15, 2024 at 10:00 AM Acme <s@acme.test> wrote:\n" + QUOTE
    new, quoted = split_reply(only_quote, None)
    assert new == only_quote.strip() and quoted == ""
    assert split_reply("-- \nJust a signature\n", None)[0] == "-- \nJust a signature"
    assert split_reply("> all quoted\n> here\n", None)[0] == "> all quoted\n> here"


def test_text_without_history_is_returned_whole() -> None:
    text = "Hello,\n\nmy order 4411 did not arrive.\n\nThanks,\nJane"
    assert split_reply(text, None) == (text, "")
    assert split_reply("", None) == ("", "")


def test_a_sentence_mentioning_wrote_is_not_an_attribution() -> None:
    text = "On Monday I wrote: please cancel.\nNothing happened.\n"
    assert split_reply(text, None)[0] == text.strip()


@pytest.mark.parametrize("marker", [
    '<div class="gmail_quote"><div class="gmail_attr">On Mon wrote:</div><blockquote>old',
    '<div id="divRplyFwdMsg"><b>From:</b> Acme<br><b>Sent:</b> Monday</div><div>old',
    '<div class="moz-cite-prefix">On 15.01.24, Acme wrote:</div><blockquote type="cite">old',
    '<blockquote type="cite"><div>On Jan 15, Acme wrote:</div>old</blockquote>',
    '<div id="appendonsend"></div><hr><div>old',
    '<div class="yahoo_quoted">old',
    '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt"><b>From:</b> old',
])
def test_html_quote_markers_find_history_the_plain_text_does_not_show(marker: str) -> None:
    html = f"<div>My answer is yes.</div>{marker}</div>"
    text = "My answer is yes.\nOn Mon wrote: old"  # a plain part without "> " quoting
    new, quoted = split_reply(text, html)
    assert new == "My answer is yes."
    assert "old" in quoted


def test_the_plain_text_decides_when_it_shows_the_history_itself() -> None:
    text = "Yes.\n\nOn Mon, Jan 15, 2024 at 10:00 AM Acme <s@acme.test> wrote:\n" + QUOTE
    html = '<div>Yes.</div><div class="gmail_quote">On Mon ... wrote:<blockquote>x</blockquote>'
    assert split_reply(text, html)[0] == "Yes."


def test_html_only_mail_is_split_on_its_markers() -> None:
    html = ('<p>Tried it.</p><div class="gmail_signature">Jane | ACME</div>'
            '<div class="gmail_quote">On Mon wrote:<blockquote>old</blockquote></div>')
    new, _ = split_reply("", html)
    assert new == "Tried it."
