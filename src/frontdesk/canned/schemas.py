from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from frontdesk.core.inputs import InputModel

SHORTCUT = re.compile(r"[\w-]{1,64}")
CONTENT_LIMIT = 65536

Scope = Literal["workspace", "personal"]


def _shortcut(value: str) -> str:
    # What follows the `/` in the composer: a word, any script, no spaces; stored lowercase
    # so `/Refund` and `/refund` are one shortcut.
    value = value.strip().lstrip("/").lower()
    if SHORTCUT.fullmatch(value) is None:
        raise ValueError("1 to 64 letters, digits, '-' or '_', no spaces")
    return value


def _content(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class CannedResponseIn(InputModel):
    shortcut: str = Field(min_length=1, max_length=64, examples=["refund"])
    content: str = Field(min_length=1, max_length=CONTENT_LIMIT,
                         examples=["Hello {{contact.name}}, your refund is on its way."])
    scope: Scope = Field(default="workspace", description="workspace-wide responses need the "
                         "supervisor role; personal ones are seen by their owner only")

    @field_validator("shortcut")
    @classmethod
    def _check_shortcut(cls, value: str) -> str:
        return _shortcut(value)

    @field_validator("content")
    @classmethod
    def _check_content(cls, value: str) -> str:
        return _content(value)


class CannedResponseUpdate(InputModel):
    shortcut: str | None = Field(default=None, min_length=1, max_length=64)
    content: str | None = Field(default=None, min_length=1, max_length=CONTENT_LIMIT)

    @field_validator("shortcut")
    @classmethod
    def _check_shortcut(cls, value: str | None) -> str | None:
        return None if value is None else _shortcut(value)

    @field_validator("content")
    @classmethod
    def _check_content(cls, value: str | None) -> str | None:
        return None if value is None else _content(value)


class CannedResponseOut(BaseModel):
    id: int
    shortcut: str
    content: str
    scope: Scope
    owner_user_id: int | None
    created_at: datetime
    updated_at: datetime


class CannedResponseList(BaseModel):
    items: list[CannedResponseOut]


class RenderedCannedResponse(BaseModel):
    id: int
    shortcut: str
    content: str = Field(description="the text with its placeholders filled in")
