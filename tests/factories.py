"""Factories: each call makes fresh, uniquely named objects through the real services."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal, create_token, create_user, ensure_workspace
from frontdesk.conversations.schemas import ReplyIn
from frontdesk.conversations.service import reply_to_conversation
from frontdesk.runtime import Runtime

_seq = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_seq)}-{uuid.uuid4().hex[:6]}"


@dataclass
class Member:
    user_id: int
    email: str
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Workspace:
    id: int
    name: str
    admin: Member
    members: list[Member] = field(default_factory=list)


class Factory:
    def __init__(self, api: httpx.AsyncClient, runtime: Runtime) -> None:
        self.api = api
        self.runtime = runtime

    async def workspace(self) -> Workspace:
        name = unique("ws")
        async with self.runtime.sessions() as session:
            ws = await ensure_workspace(session, name)
            await session.commit()
            ws_id = ws.id
        workspace = Workspace(id=ws_id, name=name, admin=None)  # type: ignore[arg-type]
        workspace.admin = await self.member(workspace, Role.ADMIN)
        return workspace

    async def member(self, workspace: Workspace, role: Role) -> Member:
        email = f"{unique(role.value)}@{workspace.name}.test"
        async with self.runtime.sessions() as session:
            ws = await ensure_workspace(session, workspace.name)
            user, _ = await create_user(session, ws, email=email, role=role,
                                        password="Correct-Horse-9")
            _, token = await create_token(session, ws.id, user.id, "test")
            await session.commit()
            member = Member(user.id, email, role, token)
        workspace.members.append(member)
        return member

    async def inbox(self, workspace: Workspace, channel: str = "api") -> int:
        r = await self.api.post("/api/v1/inboxes", headers=workspace.admin.headers,
                                json={"name": unique("inbox"), "channel": channel})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    async def incoming(
        self, workspace: Workspace, inbox_id: int, *, content: str = "Hello, I need help",
        external_id: str | None = None, **contact: Any,
    ) -> dict[str, Any]:
        """Push one customer message through the API channel; returns the ids."""
        if not contact:
            contact = {"identifier": unique("cust")}
        r = await self.api.post(
            f"/api/v1/inboxes/{inbox_id}/incoming", headers=workspace.admin.headers,
            json={"external_id": external_id or unique("ext"), "contact": contact,
                  "content": content},
        )
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    async def conversation(self, workspace: Workspace, **contact: Any) -> dict[str, Any]:
        inbox_id = await self.inbox(workspace)
        ids = await self.incoming(workspace, inbox_id, **contact)
        return {**ids, "inbox_id": inbox_id}

    # --- API-only members, and the objects the REST API tests build on ------------------

    async def api_workspace(self) -> Workspace:
        """Like `workspace`, but its members use API tokens only: no password, so no argon2
        hash (~0.2 s each), which keeps tests that need several workspaces fast."""
        name = unique("ws")
        async with self.runtime.sessions() as session:
            ws = await ensure_workspace(session, name)
            await session.commit()
            ws_id = ws.id
        workspace = Workspace(id=ws_id, name=name, admin=None)  # type: ignore[arg-type]
        workspace.admin = await self.api_member(workspace, Role.ADMIN)
        return workspace

    async def api_member(self, workspace: Workspace, role: Role) -> Member:
        """A member with an API token and no password."""
        email = f"{unique(role.value)}@{workspace.name}.test"
        async with self.runtime.sessions() as session:
            ws = await ensure_workspace(session, workspace.name)
            user, _ = await create_user(session, ws, email=email, role=role)
            _, token = await create_token(session, ws.id, user.id, "test")
            await session.commit()
            member = Member(user.id, email, role, token)
        workspace.members.append(member)
        return member

    async def token(self, member: Member, name: str = "extra") -> tuple[int, str]:
        """Another API token of `member`: (its id, the token)."""
        r = await self.api.post("/api/v1/tokens", headers=member.headers, json={"name": name})
        assert r.status_code == 201, r.text
        return int(r.json()["id"]), str(r.json()["token"])

    async def team(self, workspace: Workspace, *members: Member, name: str | None = None) -> int:
        headers = workspace.admin.headers
        r = await self.api.post("/api/v1/teams", headers=headers,
                                json={"name": name or unique("team")})
        assert r.status_code == 201, r.text
        team_id = int(r.json()["id"])
        for member in members:
            r = await self.api.post(f"/api/v1/teams/{team_id}/members", headers=headers,
                                    json={"user_id": member.user_id})
            assert r.status_code == 200, r.text
        return team_id

    async def company(self, workspace: Workspace, name: str | None = None) -> int:
        r = await self.api.post("/api/v1/companies", headers=workspace.admin.headers,
                                json={"name": name or unique("company")})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    async def tag(self, workspace: Workspace, conversation_id: int, *tags: str) -> None:
        r = await self.api.post(f"/api/v1/conversations/{conversation_id}/tags",
                                headers=workspace.admin.headers, json={"tags": list(tags)})
        assert r.status_code == 200, r.text

    async def set_status(
        self, workspace: Workspace, conversation_id: int, status: str, **extra: Any
    ) -> dict[str, Any]:
        r = await self.api.post(f"/api/v1/conversations/{conversation_id}/status",
                                headers=workspace.admin.headers, json={"status": status, **extra})
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def assign(
        self, workspace: Workspace, conversation_id: int, assignee: Member | None = None,
        team_id: int | None = None,
    ) -> dict[str, Any]:
        body = {"assignee_id": assignee.user_id if assignee else None, "team_id": team_id}
        r = await self.api.post(f"/api/v1/conversations/{conversation_id}/assign",
                                headers=workspace.admin.headers, json=body)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def email_inbox(self, workspace: Workspace, *, from_name: str = "Support",
                          signature: str = "", auto_acknowledgement: str = ""
                          ) -> tuple[int, str]:
        """An e-mail inbox with a fresh support address; returns (inbox id, address)."""
        address = f"{unique('support')}@{unique('mail').lower()}.example.com"
        r = await self.api.post("/api/v1/inboxes", headers=workspace.admin.headers,
                                json={"name": unique("mailbox"), "channel": "email",
                                      "email": address, "from_name": from_name,
                                      "signature": signature,
                                      "auto_acknowledgement": auto_acknowledgement or None})
        assert r.status_code == 201, r.text
        return int(r.json()["id"]), address

    async def webhook(self, workspace: Workspace, url: str = "http://127.0.0.1:9/hook") -> int:
        """A webhook subscription to every event (its deliveries fail: nothing listens)."""
        r = await self.api.post("/api/v1/webhooks", headers=workspace.admin.headers,
                                json={"url": url, "events": ["*"]})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    async def contact_note(
        self, workspace: Workspace, contact_id: int, body: str = "Prefers calls after 6 pm",
        author: Member | None = None,
    ) -> dict[str, Any]:
        """A note about the contact, written by `author` (the admin unless given)."""
        r = await self.api.post(f"/api/v1/contacts/{contact_id}/notes",
                                headers=(author or workspace.admin).headers, json={"body": body})
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def contact_tags(self, workspace: Workspace, contact_id: int, *tags: str) -> None:
        """Tags on the contact itself (not on its conversations)."""
        r = await self.api.post(f"/api/v1/contacts/{contact_id}/tags",
                                headers=workspace.admin.headers, json={"tags": list(tags)})
        assert r.status_code == 200, r.text

    async def replies(self, workspace: Workspace, conversation_id: int, count: int,
                      text: str = "reply") -> None:
        """`count` replies by the admin ("reply 0", "reply 1", ...), through the service in
        one transaction: a long thread without a request per message."""
        admin = Principal(workspace.admin.user_id, workspace.id, Role.ADMIN)
        async with self.runtime.sessions() as session:
            for n in range(count):
                await reply_to_conversation(session, admin, conversation_id,
                                            ReplyIn(content=f"{text} {n}"))
            await session.commit()
