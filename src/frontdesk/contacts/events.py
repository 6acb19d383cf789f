"""Payloads of the contact events (part of the webhook contract)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from frontdesk.contacts.schemas import CompanyOut, ContactNoteOut, ContactOut


class ContactEvent(BaseModel):
    contact: ContactOut
    changes: dict[str, Any] = {}


class ContactsMerged(BaseModel):
    contact: ContactOut
    merged_contact_id: int
    moved_conversation_ids: list[int]


class ContactNoteEvent(BaseModel):
    """contact_note.created / updated / deleted; `note` as it is (or was, when deleted)."""

    note: ContactNoteOut


class CompanyEvent(BaseModel):
    """company.created."""

    company: CompanyOut
    actor_user_id: int | None
