from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from frontdesk.core.events import PUBLIC_EVENTS
from frontdesk.core.inputs import InputModel
from frontdesk.webhooks.models import DeliveryStatus

ALL_EVENTS = "*"
EventName = Annotated[str, Field(min_length=1, max_length=64)]
EVENT_NAMES = frozenset(e.value for e in PUBLIC_EVENTS)  # private ones never leave


def _check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e != ALL_EVENTS and e not in EVENT_NAMES]
    if unknown:
        known = ", ".join(sorted(EVENT_NAMES))
        raise ValueError(f"unknown event type(s) {', '.join(unknown)}; use '*' or any of: {known}")
    return list(dict.fromkeys(events))  # keep the order given, drop repeats


class WebhookCreate(InputModel):
    url: str = Field(min_length=1, max_length=2048, description="http(s) URL to POST events to")
    events: list[EventName] = Field(
        min_length=1, max_length=64,
        description="event types to send, or ['*'] for all of them but the workspace "
                    "administration ones (inbox.*, member.*, team.*, webhook.*, api_token.*), "
                    "which are sent only when named")
    description: str = Field(default="", max_length=500)
    active: bool = True

    @field_validator("events")
    @classmethod
    def _valid_events(cls, v: list[str]) -> list[str]:
        return _check_events(v)


class WebhookUpdate(InputModel):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[EventName] | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=500)
    active: bool | None = None

    @field_validator("events")
    @classmethod
    def _valid_events(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_events(v)


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[str]
    description: str
    active: bool
    disabled_reason: str | None
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="signs every delivery; shown only now, keep it safe")


class AttemptOut(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    # The table says subscription; the API says webhook.
    webhook_id: int = Field(validation_alias=AliasChoices("subscription_id", "webhook_id"))
    event_id: int
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: list[AttemptOut]
    payload: dict[str, Any]
    created_at: datetime


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
