"""Payloads of the workspace administration events of accounts (part of the webhook
contract): members, teams and API tokens. A token's value and hash never appear: only
what the token list shows (id, name, the prefix, owner, dates)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from frontdesk.accounts.schemas import TeamOut, TokenOut, UserOut


class MemberEvent(BaseModel):
    """member.added / role_changed / removed: `user` with their role in the workspace
    (when removed, the role they had)."""

    user: UserOut
    changes: dict[str, Any] = {}
    actor_user_id: int | None


class TeamEvent(BaseModel):
    """team.created / updated / member_added / member_removed; `user_id` is the member
    added or removed."""

    team: TeamOut
    changes: dict[str, Any] = {}
    user_id: int | None = None
    actor_user_id: int | None


class ApiTokenEvent(BaseModel):
    """api_token.created / revoked."""

    token: TokenOut
    actor_user_id: int | None
