from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from frontdesk.core.inputs import InputModel


class InboxCreate(InputModel):
    name: str = Field(min_length=1, max_length=200)
    channel: Literal["api", "email"]
    # E-mail inboxes: the support address mail arrives at, and how replies are signed.
    email: str | None = Field(default=None, min_length=3, max_length=320)
    from_name: str | None = Field(default=None, max_length=200)
    signature: str | None = Field(default=None, max_length=5000)
    # Sent once to a new conversation's sender (never to automatic mail; at most once per
    # sender per FRONTDESK_EMAIL_AUTO_REPLY_INTERVAL_HOURS); unset: no acknowledgement.
    auto_acknowledgement: str | None = Field(default=None, max_length=5000)

    @model_validator(mode="after")
    def _email_for_email_inboxes(self) -> InboxCreate:
        if self.channel == "email":
            if not self.email:
                raise ValueError("an e-mail inbox needs its support address in `email`")
            for name in ("email", "from_name"):
                value = getattr(self, name)
                if value is not None and any(c in value for c in "\r\n"):
                    # It goes into the From header of every reply (header injection).
                    raise ValueError(f"`{name}` must be one line")
        elif self.email or self.from_name or self.signature or self.auto_acknowledgement:
            raise ValueError("email, from_name, signature and auto_acknowledgement are for "
                             "e-mail inboxes only")
        return self


class InboxUpdate(InputModel):
    """Only the fields sent change. The e-mail settings are for e-mail inboxes only
    (422 `not_an_email_inbox` otherwise); an empty `signature` or `auto_acknowledgement`
    removes it. A new `email` becomes the address replies come from; the earlier one keeps
    receiving (customers answer old threads there, and addresses never move)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, min_length=3, max_length=320)
    from_name: str | None = Field(default=None, min_length=1, max_length=200)
    signature: str | None = Field(default=None, max_length=5000)
    auto_acknowledgement: str | None = Field(default=None, max_length=5000)

    @field_validator("email", "from_name")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in "\r\n"):
            # It goes into the From header of every reply (header injection).
            raise ValueError("must be one line")
        return value

    def email_settings(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in EMAIL_SETTINGS
                if getattr(self, name) is not None}


EMAIL_SETTINGS = ("email", "from_name", "signature", "auto_acknowledgement")


class InboxOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    channel: str
    settings: dict[str, Any]
    created_at: datetime
