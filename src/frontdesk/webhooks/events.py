"""Payloads of the webhook subscription events (part of the webhook contract). The
signing secret never appears: `webhook` is what GET /webhooks/{id} shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from frontdesk.webhooks.schemas import WebhookOut


class WebhookEvent(BaseModel):
    """webhook.created / updated / deleted (when deleted, the subscription as it was).
    Frontdesk switching a webhook off itself (410 Gone) is an update with no actor."""

    webhook: WebhookOut
    changes: dict[str, Any] = {}
    actor_user_id: int | None
