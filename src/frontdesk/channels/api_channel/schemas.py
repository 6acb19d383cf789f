from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

from frontdesk.contacts.identities import normalize_email, normalize_phone
from frontdesk.conversations.schemas import AttachmentIn
from frontdesk.core.inputs import InputModel


class IncomingContact(InputModel):
    identifier: str | None = Field(default=None, min_length=1, max_length=255,
                                   description="the sender's id in your system")
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32, description="international form")

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        return normalize_email(v) if v else None

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return normalize_phone(v) if v else None

    @model_validator(mode="after")
    def _recognisable(self) -> IncomingContact:
        if not (self.identifier or self.email or self.phone):
            raise ValueError("give at least one of identifier, email or phone")
        return self


class IncomingMessage(InputModel):
    external_id: str = Field(min_length=1, max_length=512,
                             description="your id for this message; a repeat is stored once")
    contact: IncomingContact
    content: str = Field(min_length=1, max_length=65536)
    subject: str | None = Field(default=None, max_length=998)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=20)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class IncomingAccepted(BaseModel):
    message_id: int
    conversation_id: int
    contact_id: int
