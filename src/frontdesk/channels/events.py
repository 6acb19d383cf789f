"""Payloads of the inbox events (part of the webhook contract)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from frontdesk.channels.schemas import InboxOut


class InboxEvent(BaseModel):
    """inbox.created / updated; `changes` maps each changed field to [before, after]."""

    inbox: InboxOut
    changes: dict[str, Any] = {}
    actor_user_id: int | None
