from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from frontdesk.accounts.models import Role
from frontdesk.contacts.identities import normalize_email
from frontdesk.core.ids import IdIn
from frontdesk.core.inputs import InputModel


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    role: Role


class TeamCreate(InputModel):
    name: str = Field(min_length=1, max_length=200)


class TeamUpdate(InputModel):
    name: str = Field(min_length=1, max_length=200)


class TeamOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    member_ids: list[int] = []


class TeamMemberAdd(InputModel):
    user_id: IdIn


class TokenCreate(InputModel):
    name: str = Field(default="", max_length=200)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    user_id: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only a hash is kept")


class UserInvite(InputModel):
    """A new member. An existing user (by e-mail) joins with this role; their name and
    password stay as they are: only they can change those."""

    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    role: Role = Role.AGENT
    password: str | None = Field(default=None, min_length=8, max_length=200)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        # The same rule as the CLI's: internal domains (corp.local, .test) are fine.
        return normalize_email(v)


class RoleChange(InputModel):
    role: Role
