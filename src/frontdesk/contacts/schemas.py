from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from frontdesk.contacts.identities import normalize_email, normalize_phone
from frontdesk.core.ids import IdIn
from frontdesk.core.inputs import InputModel


class IdentityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    scope: str
    value: str


class ContactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str | None
    phone: str | None
    company_id: int | None
    custom_attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ContactDetail(ContactOut):
    identities: list[IdentityOut] = []
    tags: list[str] = Field(default=[], description="the contact's own tags, by name")


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class ContactUpdate(InputModel):
    """Only these fields can change; anything else in the body is refused (422).
    An e-mail address or phone number becomes an identity of the contact (409
    `identity_taken` if another contact has it); null or "" clears the preferred one."""

    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    company_id: IdIn | None = None
    custom_attributes: dict[str, Any] | None = Field(
        default=None, description="merged into the existing attributes; a null value removes one"
    )

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        return normalize_email(v) if v and v.strip() else None

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return normalize_phone(v) if v and v.strip() else None


class ContactMerge(InputModel):
    merge_id: IdIn = Field(description="the contact folded into this one and then removed")


class CompanyCreate(InputModel):
    name: str = Field(min_length=1, max_length=200)
    domain: str | None = Field(default=None, max_length=253)
    custom_attributes: dict[str, Any] = Field(default_factory=dict)


class CompanyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    domain: str | None
    custom_attributes: dict[str, Any]
    created_at: datetime


MAX_NOTE_CHARS = 10_000
MAX_CONTACT_TAG_CHARS = 100


class ContactNoteIn(InputModel):
    """A note about the customer, in plain text (never rendered as HTML)."""

    body: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)

    @field_validator("body")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a note needs some text")
        return v.strip()


class ContactNoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    contact_id: int
    author_user_id: int | None = Field(description="null once the author has left")
    body: str
    created_at: datetime
    updated_at: datetime


class ContactNotePage(BaseModel):
    items: list[ContactNoteOut]
    next_cursor: str | None


class ContactTagsIn(InputModel):
    tags: list[str] = Field(min_length=1, max_length=50)

    @field_validator("tags")
    @classmethod
    def _normalize(cls, tags: list[str]) -> list[str]:
        out: list[str] = []
        for t in tags:
            name = normalize_contact_tag(t)
            if name not in out:
                out.append(name)
        return out


def normalize_contact_tag(name: str) -> str:
    """Stored trimmed and in lower case, as conversation tags are: "VIP" is "vip"."""
    normalized = name.strip().lower()
    if not normalized or len(normalized) > MAX_CONTACT_TAG_CHARS:
        raise ValueError("a tag is 1 to 100 characters")
    return normalized
