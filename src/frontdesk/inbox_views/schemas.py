from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from frontdesk.conversations.models import ConversationStatus, Priority
from frontdesk.conversations.schemas import ConversationSort
from frontdesk.conversations.service import ConversationFilters
from frontdesk.core.ids import IdIn
from frontdesk.core.inputs import InputModel

NAME_LIMIT = 100


class ViewFilters(InputModel):
    """What a view lists: the filters of GET /api/v1/conversations, and its sort."""

    status: list[ConversationStatus] = Field(default_factory=list, max_length=5,
                                             description="empty: any status")
    inbox_id: IdIn | None = None
    channel: str | None = Field(default=None, max_length=32,
                                description="the inbox's channel: api, email...")
    team_id: IdIn | None = None
    tag: str | None = Field(default=None, max_length=100)
    priority: list[Priority] = Field(default_factory=list, max_length=5,
                                     description="empty: any priority")
    assignee: str | None = Field(default=None, pattern=r"^(me|none|[1-9][0-9]{0,17})$",
                                 description="a user id, 'me' (whoever looks) or 'none'")
    q: str | None = Field(default=None, max_length=200)
    automatic: bool | None = Field(default=None, description=(
        "true: only conversations automatic mail opened; false: only the others"))
    sort: ConversationSort = ConversationSort.NEWEST

    @field_validator("tag", "q", "channel")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("tag")
    @classmethod
    def _tag_name(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    def to_service(self) -> ConversationFilters:
        return ConversationFilters(
            status=list(self.status) or None, inbox_id=self.inbox_id, channel=self.channel,
            assignee=self.assignee, team_id=self.team_id, tag=self.tag,
            priority=list(self.priority) or None, q=self.q, automatic=self.automatic)


def _name(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValueError("must not be blank")
    return value


class ViewCreate(InputModel):
    name: str = Field(min_length=1, max_length=NAME_LIMIT)
    shared: bool = Field(default=False, description="seen by the whole workspace; "
                         "supervisors and admins only")
    filters: ViewFilters = Field(default_factory=ViewFilters)

    @field_validator("name")
    @classmethod
    def _clean_name(cls, value: str) -> str:
        return _name(value)


class ViewUpdate(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_LIMIT)
    shared: bool | None = None
    filters: ViewFilters | None = None

    @field_validator("name")
    @classmethod
    def _clean_name(cls, value: str | None) -> str | None:
        return None if value is None else _name(value)


class ViewOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    shared: bool
    owner_id: int
    filters: ViewFilters
    created_at: datetime
    updated_at: datetime


class ViewList(BaseModel):
    items: list[ViewOut]
