"""The words of a push notification, in the receiving agent's language (the service
worker shows them as they come: it has no catalogs of its own)."""

from __future__ import annotations

from typing import Any

from frontdesk.web.i18n import N_, normalize_locale, translate

N_("%(name)s assigned you a conversation")
N_("A conversation was assigned to you")
N_("Conversation #%(id)s")


def assignment_notification(
    locale: str, *, conversation_id: int, actor_name: str | None, contact_name: str | None,
    subject: str | None, workspace_id: int,
) -> dict[str, Any]:
    """The JSON the service worker turns into a notification (see static/sw.js)."""
    lang = normalize_locale(locale)
    if actor_name:
        title = translate(lang, "%(name)s assigned you a conversation") % {"name": actor_name}
    else:
        title = translate(lang, "A conversation was assigned to you")
    fallback = translate(lang, "Conversation #%(id)s") % {"id": conversation_id}
    body = " · ".join(part for part in (contact_name, subject) if part) or fallback
    return {
        "type": "conversation.assigned",
        "title": title[:200],
        "body": body[:300],
        "url": f"/app/conversations/{conversation_id}?ws={workspace_id}",
        "tag": f"conversation-{conversation_id}",
        "lang": lang.replace("_", "-"),
        "dir": "rtl" if lang == "ar" else "ltr",
    }
