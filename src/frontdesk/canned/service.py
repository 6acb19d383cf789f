"""Canned responses: the only place that changes them, and the one that fills their
placeholders.

Workspace-wide responses are managed by supervisors and admins and offered to everyone;
personal ones belong to one member, who alone sees and manages them (to anybody else their
ids answer 404, like another workspace's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Role, User
from frontdesk.accounts.service import Principal
from frontdesk.canned.models import CannedResponse
from frontdesk.canned.schemas import CannedResponseIn, CannedResponseOut, CannedResponseUpdate
from frontdesk.contacts.models import Contact
from frontdesk.conversations.service import get_conversation
from frontdesk.core.activity import record_activity
from frontdesk.core.errors import Conflict, Forbidden, NotFound
from frontdesk.core.ids import is_storable_id
from frontdesk.core.tenancy import get_in_workspace

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+\.[a-z_]+)\s*\}\}")
PLACEHOLDERS = ("contact.name", "agent.name", "conversation.id")


@dataclass(frozen=True)
class PlaceholderValues:
    """What the placeholders stand for; None leaves the placeholder as written."""

    contact_name: str | None = None
    agent_name: str | None = None
    conversation_id: int | None = None

    def lookup(self, name: str) -> str | None:
        if name == "contact.name":
            return self.contact_name
        if name == "agent.name":
            return self.agent_name
        if name == "conversation.id":
            return None if self.conversation_id is None else str(self.conversation_id)
        return None


def fill_placeholders(content: str, values: PlaceholderValues) -> str:
    """Substitute the known placeholders in one pass. Not a template engine: nothing in a
    response is evaluated, and a value that itself looks like `{{...}}` (a contact named
    so) is inserted as the text it is, never expanded. The result is plain text; whoever
    shows it escapes it like any other message text."""

    def replace(match: re.Match[str]) -> str:
        value = values.lookup(match.group(1))
        return match.group(0) if value is None else value

    return PLACEHOLDER.sub(replace, content)


def to_out(row: CannedResponse) -> CannedResponseOut:
    return CannedResponseOut(
        id=row.id, shortcut=row.shortcut, content=row.content,
        scope="workspace" if row.owner_user_id is None else "personal",
        owner_user_id=row.owner_user_id, created_at=row.created_at, updated_at=row.updated_at,
    )


def _visible_to(principal: Principal) -> ColumnElement[bool]:
    return or_(CannedResponse.owner_user_id.is_(None),
               CannedResponse.owner_user_id == principal.user_id)


async def list_canned_responses(
    session: AsyncSession, principal: Principal, *, q: str | None = None
) -> list[CannedResponse]:
    """Everything the member may use: the workspace's and their own, by shortcut (a
    personal response first where both use one shortcut)."""
    stmt = select(CannedResponse).where(CannedResponse.workspace_id == principal.workspace_id,
                                        _visible_to(principal))
    if q and q.strip():
        needle = q.strip().lstrip("/").lower().replace("\\", "\\\\").replace(
            "%", "\\%").replace("_", "\\_")
        stmt = stmt.where(or_(CannedResponse.shortcut.like(f"{needle}%", escape="\\"),
                              CannedResponse.content.ilike(f"%{needle}%", escape="\\")))
    rows = list((await session.execute(stmt.order_by(CannedResponse.shortcut))).scalars())
    rows.sort(key=lambda r: (r.shortcut, r.owner_user_id is None))
    return rows


async def get_canned_response(
    session: AsyncSession, principal: Principal, canned_id: int
) -> CannedResponse:
    row = await get_in_workspace(session, CannedResponse, principal.workspace_id, canned_id,
                                 what="Canned response")
    if row.owner_user_id not in (None, principal.user_id):
        raise NotFound(f"Canned response {canned_id} was not found")
    return row


def _may_manage(principal: Principal, row_owner: int | None) -> None:
    if row_owner is None and not principal.role.at_least(Role.SUPERVISOR):
        raise Forbidden("Workspace-wide canned responses are managed by supervisors and "
                        "admins; make a personal one instead")


async def _shortcut_free(
    session: AsyncSession, workspace_id: int, owner: int | None, shortcut: str,
    *, except_id: int | None = None,
) -> None:
    stmt = select(CannedResponse.id).where(
        CannedResponse.workspace_id == workspace_id, CannedResponse.shortcut == shortcut,
        CannedResponse.owner_user_id.is_(None) if owner is None
        else CannedResponse.owner_user_id == owner,
    )
    if except_id is not None:
        stmt = stmt.where(CannedResponse.id != except_id)
    if (await session.execute(stmt)).first() is not None:
        raise Conflict(f"The shortcut /{shortcut} is already taken", code="shortcut_taken",
                       details=[{"field": "body.shortcut", "message": "already taken"}])


def _audit(session: AsyncSession, principal: Principal, action: str, row: CannedResponse,
           changes: dict[str, object]) -> None:
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action=f"canned_response.{action}",
                    subject_type="canned_response", subject_id=row.id, changes=changes)


async def create_canned_response(
    session: AsyncSession, principal: Principal, data: CannedResponseIn
) -> CannedResponse:
    owner = principal.user_id if data.scope == "personal" else None
    _may_manage(principal, owner)
    await _shortcut_free(session, principal.workspace_id, owner, data.shortcut)
    row = CannedResponse(workspace_id=principal.workspace_id, owner_user_id=owner,
                         shortcut=data.shortcut, content=data.content,
                         created_by_id=principal.user_id)
    session.add(row)
    await session.flush()
    _audit(session, principal, "created", row, {"shortcut": data.shortcut, "scope": data.scope})
    return row


async def update_canned_response(
    session: AsyncSession, principal: Principal, canned_id: int, patch: CannedResponseUpdate
) -> CannedResponse:
    row = await get_canned_response(session, principal, canned_id)
    _may_manage(principal, row.owner_user_id)
    changes: dict[str, object] = {}
    if patch.shortcut is not None and patch.shortcut != row.shortcut:
        await _shortcut_free(session, principal.workspace_id, row.owner_user_id, patch.shortcut,
                             except_id=row.id)
        changes["shortcut"] = [row.shortcut, patch.shortcut]
        row.shortcut = patch.shortcut
    if patch.content is not None and patch.content != row.content:
        changes["content"] = True  # the text itself stays out of the audit log
        row.content = patch.content
    if changes:
        await session.flush()
        _audit(session, principal, "updated", row, changes)
    return row


async def delete_canned_response(
    session: AsyncSession, principal: Principal, canned_id: int
) -> None:
    row = await get_canned_response(session, principal, canned_id)
    _may_manage(principal, row.owner_user_id)
    _audit(session, principal, "deleted", row, {"shortcut": row.shortcut})
    await session.delete(row)
    await session.flush()


async def placeholder_values(
    session: AsyncSession, principal: Principal, conversation_id: int | None
) -> PlaceholderValues:
    """The values for `principal` answering `conversation_id` (None: the agent's only)."""
    agent = await session.get(User, principal.user_id)
    agent_name = (agent.name or agent.email) if agent is not None else None
    if conversation_id is None or not is_storable_id(conversation_id):
        if conversation_id is not None:
            raise NotFound(f"Conversation {conversation_id} was not found")
        return PlaceholderValues(agent_name=agent_name)
    conversation = await get_conversation(session, principal, conversation_id)
    contact = await session.get(Contact, conversation.contact_id)
    contact_name = ""
    if contact is not None:
        contact_name = contact.name or contact.email or contact.phone or ""
    return PlaceholderValues(contact_name=contact_name, agent_name=agent_name,
                             conversation_id=conversation.id)


async def render_canned_response(
    session: AsyncSession, principal: Principal, canned_id: int, conversation_id: int | None
) -> tuple[CannedResponse, str]:
    row = await get_canned_response(session, principal, canned_id)
    values = await placeholder_values(session, principal, conversation_id)
    return row, fill_placeholders(row.content, values)
