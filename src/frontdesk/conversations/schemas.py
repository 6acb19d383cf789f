from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from frontdesk.conversations.models import ConversationStatus, Priority
from frontdesk.core.ids import MAX_ID, IdIn
from frontdesk.core.inputs import InputModel


class AttachmentIn(InputModel):
    url: str | None = Field(default=None, max_length=2048)
    filename: str = Field(default="", max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=255)
    size: int | None = Field(default=None, ge=0, le=MAX_ID)


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    inbox_id: int
    contact_id: int
    status: ConversationStatus
    priority: Priority
    assignee_id: int | None
    team_id: int | None
    subject: str | None
    tags: list[str] = []
    custom_fields: dict[str, Any]
    snoozed_until: datetime | None
    first_response_at: datetime | None
    last_activity_at: datetime
    created_at: datetime
    merged_into_id: int | None = Field(
        default=None, description="set when this conversation was merged into that one")
    waiting_since: datetime | None = Field(
        default=None, description="since when the customer has waited for a public reply")
    automatic: bool = Field(default=False, description=(
        "opened by automatic mail (an out-of-office, a monitoring alert); cleared when the "
        "customer writes in it"))


class ConversationForUserOut(ConversationOut):
    """A conversation as the calling user sees it: with their own read state."""

    unread: bool = Field(default=False, description=(
        "for the calling user: a customer message came after the last one they read, or "
        "they marked it unread"))


class ConversationPage(BaseModel):
    items: list[ConversationForUserOut]
    next_cursor: str | None


class MarkReadIn(InputModel):
    up_to_message_id: IdIn | None = Field(
        default=None, description="read up to this message (the newest one shown); "
        "default: every message there is now. A read position never moves back")


class ReadStateOut(BaseModel):
    """The calling user's read state of a conversation."""

    conversation_id: int
    unread: bool
    last_read_message_id: int | None = Field(
        description="the newest message of the conversation they have read")


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    conversation_id: int
    inbox_id: int
    message_type: str
    sender_type: str
    sender_contact_id: int | None
    sender_user_id: int | None
    content: str
    content_html: str | None
    attachments: list[dict[str, Any]]
    external_id: str | None
    delivery_status: str
    delivery_error: str | None
    created_at: datetime


class UploadOut(BaseModel):
    """A stored file for a reply: its `id` goes into the reply's `upload_ids`."""

    id: str
    filename: str
    content_type: str
    size: int


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class ReplyIn(InputModel):
    content: str = Field(min_length=1, max_length=65536)
    private: bool = False
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=20)
    upload_ids: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        default_factory=list, max_length=20,
        description="ids answered by POST /attachments: those files go with the reply")
    reply_all: bool = Field(
        default=True, description="e-mail: Cc the conversation's other participants too")

    @field_validator("content")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class AssignIn(InputModel):
    assignee_id: IdIn | None = Field(default=None, description="null unassigns")
    team_id: IdIn | None = Field(default=None, description="null leaves the team as it is")


class StatusIn(InputModel):
    status: ConversationStatus
    snoozed_until: datetime | None = Field(
        default=None, description="required with status snoozed; must be in the future"
    )

    @field_validator("snoozed_until")
    @classmethod
    def _in_utc(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        if v.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2030-01-01T09:00:00Z")
        try:
            return v.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("out of range") from exc


class ConversationUpdate(InputModel):
    priority: Priority | None = None
    subject: str | None = Field(default=None, max_length=998)
    custom_fields: dict[str, Any] | None = None


TagName = str


class TagsIn(InputModel):
    tags: list[str] = Field(min_length=1, max_length=50)

    @field_validator("tags")
    @classmethod
    def _normalize(cls, tags: list[str]) -> list[str]:
        out: list[str] = []
        for t in tags:
            name = t.strip().lower()
            if not name or len(name) > 100:
                raise ValueError("a tag is 1 to 100 characters")
            if name not in out:
                out.append(name)
        return out


class TagsOut(BaseModel):
    tags: list[str]


class MessageOrder(enum.StrEnum):
    """Orders of a conversation's messages."""

    ASC = "asc"  # oldest first: the thread as it is read
    DESC = "desc"  # newest first: the latest page, then earlier ones


class ConversationSort(enum.StrEnum):
    """Orders of a conversation list."""

    NEWEST = "newest"  # latest activity first
    OLDEST = "oldest"  # earliest activity first
    WAITING = "waiting"  # the customer waiting longest first, then those not waiting
    PRIORITY = "priority"  # urgent, high, medium, low, none; then latest activity


class BulkAction(enum.StrEnum):
    ASSIGN = "assign"
    TAG = "tag"
    RESOLVE = "resolve"
    READ = "read"  # for the calling user alone, as POST /conversations/{id}/read
    UNREAD = "unread"  # for the calling user alone, as POST /conversations/{id}/unread


BULK_LIMIT = 100


class BulkIn(InputModel):
    """One action on many conversations: each is changed as a single change would change
    it (events, activity line), all in one transaction. An id that names no conversation
    of the workspace refuses the whole request (404) and nothing is changed."""

    ids: list[IdIn] = Field(min_length=1, max_length=BULK_LIMIT)
    action: BulkAction
    assignee_id: IdIn | None = Field(default=None,
                                     description="assign: the agent; null unassigns")
    team_id: IdIn | None = Field(default=None, description="assign: null leaves the team")
    tags: list[str] | None = Field(default=None, max_length=50,
                                   description="tag: the tags to add")

    @field_validator("ids")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        return list(dict.fromkeys(ids))

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, tags: list[str] | None) -> list[str] | None:
        return None if tags is None else TagsIn._normalize(tags)


class BulkOut(BaseModel):
    items: list[ConversationOut]


# --- conversation tools: merge, move / split, scheduled replies ---------------------------


class MergeIn(InputModel):
    other_id: IdIn = Field(description="the conversation merged into this one (and closed); "
                           "both must be the same contact's")


class MoveIn(InputModel):
    target_conversation_id: IdIn | None = Field(
        default=None, description="an existing conversation of the same contact; null splits "
        "the messages off into a new conversation")
    with_following: bool = Field(default=False,
                                 description="also move every later message of the conversation")


class MoveOut(BaseModel):
    source: ConversationOut
    target: ConversationOut
    moved_message_ids: list[int]


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2030-01-01T09:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("out of range") from exc


class ScheduledMessageIn(InputModel):
    content: str = Field(min_length=1, max_length=65536)
    send_at: datetime = Field(description="when to send it; in the future, with a time zone")

    @field_validator("content")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_validator("send_at")
    @classmethod
    def _in_utc(cls, v: datetime) -> datetime:
        return _aware_utc(v)


class ScheduledMessageUpdate(InputModel):
    content: str | None = Field(default=None, min_length=1, max_length=65536)
    send_at: datetime | None = None

    @field_validator("content")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_validator("send_at")
    @classmethod
    def _in_utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else _aware_utc(v)


class ScheduledMessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    conversation_id: int
    author_user_id: int
    content: str
    send_at: datetime
    status: str = Field(description="scheduled, sent, cancelled or failed")
    message_id: int | None = Field(description="the message it became, once sent")
    sent_at: datetime | None
    error: str | None
    created_at: datetime


class ScheduledMessageList(BaseModel):
    items: list[ScheduledMessageOut]
