"""The services' refusals in words an agent reads in their own language.

A service raises a `FrontdeskError` with a stable `code` and an English message for the API.
Pages and toasts show the text this table gives the code instead, translated, with the
error's `details` filling its placeholders. An error the web layer raised in an agent's
words (`InvalidInput(N_(...))`, a msgid of the catalog) keeps them, translated; a code not
listed here keeps the service's message as it is.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from babel.messages.pofile import read_po

from frontdesk.web import i18n
from frontdesk.web.i18n import N_

# code -> msgid; %(name)s placeholders are filled from the error's `details` (a dict).
SERVICE_ERRORS: dict[str, str] = {
    # Any service, by class.
    "not_found": N_("This was not found: it may have been deleted, or the link is wrong."),
    "forbidden": N_("Your role does not allow this."),
    "conflict": N_("This changed meanwhile; reload and try again."),
    "invalid_cursor": N_("This list changed its order; reload the page."),
    # Ownership and assignment.
    "not_yours": N_("This belongs to another agent; ask a supervisor."),
    "assign_to_self_only": N_("Agents can only assign conversations to themselves."),
    # Merged conversations, merging, moving.
    "conversation_merged": N_("This conversation was merged into another one; continue there."),
    "already_merged": N_("That conversation was merged into #%(merged_into_id)s already; "
                         "continue there."),
    "different_contacts": N_("These conversations belong to different customers; merge the "
                             "contacts first if they are one person."),
    "same_conversation": N_("Choose another conversation."),
    "nothing_left": N_("Nothing would be left in this conversation; merge it instead."),
    "not_movable": N_("Activity lines stay where they are."),
    # Replies, files and scheduled replies.
    "uploads_not_accepted": N_("Files cannot be attached here."),
    "unknown_upload": N_("An attached file is no longer available; attach it again."),
    "upload_expired": N_("An attached file is no longer available; attach it again."),
    "upload_too_large": N_("The file is too large."),
    "empty_upload": N_("The file is empty."),
    "send_at_in_past": N_("Choose a time in the future."),
    "scheduled_message_sent": N_("This reply was sent already."),
    "scheduled_message_cancelled": N_("This reply was cancelled."),
    "scheduled_message_failed": N_("This reply could not be sent."),
    "not_author": N_("Only its author or a supervisor can change a scheduled reply."),
    # Inboxes.
    "inbox_disabled": N_("This inbox is disabled; an admin can enable it again."),
    # Tags, views, canned responses, contacts.
    "bad_tag": N_("A tag is 1 to 100 characters."),
    "too_many_views": N_("You have too many saved views; delete one first."),
    "shortcut_taken": N_("That shortcut is already taken."),
    "identity_taken": N_("That identity belongs to another contact; merge the two contacts "
                         "instead."),
    "same_contact": N_("Choose another contact."),
}


def service_error_text(code: str, message: str, details: Any, locale: str) -> str:
    """What a person reads, in `locale`, for an error with this code, message and details."""
    if message in _catalog_msgids():  # the web's own words (a role page, a form's check)
        return i18n.translate(locale, message)
    msgid = SERVICE_ERRORS.get(code)
    if msgid is None:
        return message
    values = details if isinstance(details, dict) else {}
    try:
        return i18n.translate(locale, msgid) % values
    except (KeyError, TypeError, ValueError):
        # The error lacks a placeholder's value (or a translation is malformed): the
        # service's own words still say what happened.
        return message


@cache
def _catalog_msgids() -> frozenset[str]:
    """Every msgid of the web's catalog template (`make messages` extracts them)."""
    with (i18n.TRANSLATIONS_DIR / "messages.pot").open("rb") as f:
        return frozenset(m.id for m in read_po(f) if isinstance(m.id, str) and m.id)
