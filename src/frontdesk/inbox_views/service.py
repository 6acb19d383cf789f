"""Saved views: the only place that changes them.

A personal view belongs to its owner: nobody else sees it (another person's id answers 404,
as an unknown one does). A shared view is seen by everyone in the workspace and made,
changed or deleted by supervisors and admins only.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Role, Team
from frontdesk.accounts.service import Principal, get_member
from frontdesk.channels.models import Inbox
from frontdesk.core.activity import record_activity
from frontdesk.core.errors import Conflict, NotFound
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.inbox_views.models import InboxView
from frontdesk.inbox_views.schemas import ViewCreate, ViewFilters, ViewUpdate

VIEWS_PER_PERSON = 100  # personal and shared views a person may make


async def list_views(session: AsyncSession, principal: Principal) -> list[InboxView]:
    """The shared views, then the caller's own, each by name."""
    rows = await session.execute(
        select(InboxView)
        .where(InboxView.workspace_id == principal.workspace_id,
               or_(InboxView.shared.is_(True), InboxView.owner_id == principal.user_id))
        .order_by(InboxView.shared.desc(), InboxView.name, InboxView.id)
    )
    return list(rows.scalars())


async def get_view(
    session: AsyncSession, principal: Principal, view_id: int, *, for_update: bool = False
) -> InboxView:
    view = await get_in_workspace(session, InboxView, principal.workspace_id, view_id,
                                  what="View", for_update=for_update)
    if not view.shared and view.owner_id != principal.user_id:
        raise NotFound(f"View {view_id} was not found")
    return view


async def _check_filters(session: AsyncSession, principal: Principal, filters: ViewFilters) -> None:
    """Ids in the filters name objects of the caller's workspace (404 otherwise)."""
    ws = principal.workspace_id
    if filters.inbox_id is not None:
        await get_in_workspace(session, Inbox, ws, filters.inbox_id, what="Inbox")
    if filters.team_id is not None:
        await get_in_workspace(session, Team, ws, filters.team_id, what="Team")
    if filters.assignee is not None and filters.assignee.isdigit():
        await get_member(session, ws, int(filters.assignee))


def _log(session: AsyncSession, principal: Principal, action: str, view: InboxView,
            changes: dict[str, object]) -> None:
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action=action, subject_type="inbox_view",
                    subject_id=view.id, changes=changes)


async def create_view(session: AsyncSession, principal: Principal, data: ViewCreate) -> InboxView:
    if data.shared:
        principal.require(Role.SUPERVISOR)
    await _check_filters(session, principal, data.filters)
    made = len((await session.execute(
        select(InboxView.id).where(InboxView.workspace_id == principal.workspace_id,
                                   InboxView.owner_id == principal.user_id)
        .limit(VIEWS_PER_PERSON)
    )).all())
    if made >= VIEWS_PER_PERSON:
        raise Conflict(f"You have {VIEWS_PER_PERSON} views already; delete one first",
                       code="too_many_views")
    view = InboxView(workspace_id=principal.workspace_id, owner_id=principal.user_id,
                     name=data.name, shared=data.shared,
                     filters=data.filters.model_dump(mode="json"))
    session.add(view)
    await session.flush()
    _log(session, principal, "inbox_view.created", view,
            {"name": view.name, "shared": view.shared})
    return view


async def update_view(
    session: AsyncSession, principal: Principal, view_id: int, patch: ViewUpdate
) -> InboxView:
    view = await get_view(session, principal, view_id, for_update=True)
    if view.shared or patch.shared:
        principal.require(Role.SUPERVISOR)
    changes: dict[str, object] = {}
    if patch.name is not None and patch.name != view.name:
        changes["name"] = [view.name, patch.name]
        view.name = patch.name
    if patch.shared is not None and patch.shared != view.shared:
        changes["shared"] = [view.shared, patch.shared]
        view.shared = patch.shared
    if patch.filters is not None:
        await _check_filters(session, principal, patch.filters)
        stored = patch.filters.model_dump(mode="json")
        if stored != view.filters:
            changes["filters"] = [view.filters, stored]
            view.filters = stored
    if changes:
        await session.flush()
        _log(session, principal, "inbox_view.updated", view, changes)
    return view


async def delete_view(session: AsyncSession, principal: Principal, view_id: int) -> None:
    view = await get_view(session, principal, view_id, for_update=True)
    if view.shared:
        principal.require(Role.SUPERVISOR)
    _log(session, principal, "inbox_view.deleted", view, {"name": view.name})
    await session.delete(view)
