from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class QuarantinedEmailOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    inbox_id: int
    reason_code: str
    reason: str
    size: int
    source: str
    envelope_sender: str | None
    envelope_recipients: list[str]
    created_at: datetime
    reprocessed_at: datetime | None
    message_id: int | None


class ReprocessedOut(BaseModel):
    status: Literal["stored", "duplicate", "quarantined"]
    message_id: int | None
    conversation_id: int | None
    reason: str | None


class ForwardedMailOut(BaseModel):
    """A mail forwarded in this one (inline under a forward separator, or attached): who
    originally wrote it. Shown to the agent; these people are not participants."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="'Name <address>', or the address")
    to: list[str]
    cc: list[str]
    subject: str
    date: str = Field(description="as the forwarding client wrote it")


class EmailRecordOut(BaseModel):
    """The e-mail side of a message: headers, the whole text and the quoted history that
    the message's `content` leaves out (shown folded), and how it was classified."""

    model_config = ConfigDict(from_attributes=True)

    message_id: int
    conversation_id: int
    direction: str
    header_message_id: str
    subject: str
    from_address: str
    from_name: str
    # Inbound: which of the inbox's addresses it was sent to (its conversation's replies
    # come from it); None: unknown, and for our own mail.
    support_address: str | None
    to_addresses: list[str]
    cc_addresses: list[str]
    in_reply_to: str | None
    reference_ids: list[str]
    text: str
    quoted_text: str
    automatic_kind: str | None
    automatic_reason: str | None
    is_bounce: bool
    thread_note: str | None
    defects: list[str]
    forwarded: list[ForwardedMailOut]
    created_at: datetime
