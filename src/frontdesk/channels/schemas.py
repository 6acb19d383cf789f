from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from frontdesk.core.inputs import InputModel

MAX_ADDRESSES = 50
# One address (normalised and checked by the service: 422 `invalid_email`); a line break
# is refused here, as in `email`: replies go out From these addresses.
SupportAddressIn = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^\r\n]*$")]


class InboxCreate(InputModel):
    name: str = Field(min_length=1, max_length=200)
    channel: Literal["api", "email"]
    # E-mail inboxes: the support address mail arrives at (the primary: replies come from it
    # unless the customer wrote to another), other addresses it receives at too, and how
    # replies are signed.
    email: str | None = Field(default=None, min_length=3, max_length=320)
    addresses: list[SupportAddressIn] | None = Field(default=None, max_length=MAX_ADDRESSES)
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
        elif (self.email or self.addresses is not None or self.from_name or self.signature
              or self.auto_acknowledgement):
            raise ValueError("email, addresses, from_name, signature and auto_acknowledgement "
                             "are for e-mail inboxes only")
        return self


class InboxUpdate(InputModel):
    """Only the fields sent change. The e-mail settings are for e-mail inboxes only
    (422 `not_an_email_inbox` otherwise); an empty `signature` or `auto_acknowledgement`
    removes it. A new `email` becomes the primary address (replies come from it unless the
    customer wrote to another); the earlier one keeps receiving (customers answer old
    threads there). `addresses` is every address the inbox receives at from now on: new
    ones are claimed (409 `email_address_taken` if another inbox owns one), missing ones
    released; it must hold the primary address (422 `primary_address_required`)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, min_length=3, max_length=320)
    addresses: list[SupportAddressIn] | None = Field(default=None, min_length=1,
                                                     max_length=MAX_ADDRESSES)
    from_name: str | None = Field(default=None, min_length=1, max_length=200)
    signature: str | None = Field(default=None, max_length=5000)
    auto_acknowledgement: str | None = Field(default=None, max_length=5000)
    disabled: bool | None = Field(default=None, description=(
        "true archives the inbox: it takes no new messages (pushing answers 409 "
        "inbox_disabled, SMTP 550, IMAP is not polled) while its conversations stay "
        "readable and answerable; false enables it again"))

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
    # An e-mail inbox's addresses, the primary (`settings.email`) first; others: [].
    addresses: list[str] = []
    created_at: datetime
    disabled_at: datetime | None = Field(
        default=None, description="set while the inbox is disabled: it takes no new messages")
