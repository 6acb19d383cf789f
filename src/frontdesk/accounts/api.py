from __future__ import annotations

from fastapi import APIRouter, Response

from frontdesk.accounts import service
from frontdesk.accounts.auth import AdminPrincipal, CurrentPrincipal, forget_cached_tokens
from frontdesk.accounts.models import Role, User
from frontdesk.accounts.schemas import (
    RoleChange,
    TeamCreate,
    TeamMemberAdd,
    TeamOut,
    TeamUpdate,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserInvite,
    UserOut,
)
from frontdesk.core.deps import DbSession
from frontdesk.core.errors import ErrorOut
from frontdesk.core.ids import PathId

router = APIRouter(tags=["accounts"])


def _user_out(user: User, role: Role) -> UserOut:
    return UserOut(id=user.id, email=user.email, name=user.name, role=role)


@router.get("/me", response_model=UserOut)
async def me(db: DbSession, principal: CurrentPrincipal) -> UserOut:
    user, role = await service.get_member(db, principal.workspace_id, principal.user_id)
    return _user_out(user, role)


@router.get("/users", response_model=list[UserOut])
async def list_users(db: DbSession, principal: CurrentPrincipal) -> list[UserOut]:
    return [_user_out(u, r) for u, r in await service.list_members(db, principal.workspace_id)]


@router.post("/users", response_model=UserOut, status_code=201,
             responses={409: {"model": ErrorOut,
                              "description": "already a member (code already_member): change "
                                             "their role with POST /users/{user_id}/role"}})
async def add_user(body: UserInvite, db: DbSession, principal: AdminPrincipal) -> UserOut:
    user, membership = await service.add_member(db, principal, email=str(body.email),
                                                role=body.role, password=body.password,
                                                name=body.name)
    return _user_out(user, Role(membership.role))


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: PathId, db: DbSession, principal: CurrentPrincipal) -> UserOut:
    user, role = await service.get_member(db, principal.workspace_id, user_id)
    return _user_out(user, role)


@router.post("/users/{user_id}/role", response_model=UserOut)
async def change_role(
    user_id: PathId, body: RoleChange, db: DbSession, principal: AdminPrincipal
) -> UserOut:
    user, role = await service.change_role(db, principal, user_id, body.role)
    forget_cached_tokens()
    return _user_out(user, role)


@router.delete("/users/{user_id}", status_code=204, response_class=Response,
               responses={409: {"model": ErrorOut,
                                 "description": "yourself, or the workspace's last admin"}})
async def remove_user(user_id: PathId, db: DbSession, principal: AdminPrincipal) -> Response:
    """Deactivate a member: their membership, sessions and tokens here end, their unfinished
    conversations are unassigned. The person's history stays; they can be invited back."""
    await service.remove_member(db, principal, user_id)
    forget_cached_tokens()
    return Response(status_code=204)


@router.get("/deactivated-users", response_model=list[UserOut])
async def list_deactivated_users(db: DbSession, principal: AdminPrincipal) -> list[UserOut]:
    """People deactivated in this workspace (and not members again), each with the role
    they had, most recently deactivated first."""
    return [_user_out(u, r) for u, r in await service.list_former_members(db, principal)]


@router.post("/users/{former_user_id}/reactivate", response_model=UserOut, status_code=201,
             responses={409: {"model": ErrorOut,
                              "description": "a member already (code already_member)"}})
async def reactivate_user(
    former_user_id: PathId, body: RoleChange, db: DbSession, principal: AdminPrincipal
) -> UserOut:
    """Make a deactivated member a member again with `role`. Their API tokens stay revoked;
    teams and conversations are not given back. Event `member.reactivated`."""
    user = await service.reactivate_member(db, principal, former_user_id, body.role)
    forget_cached_tokens()
    return _user_out(user, body.role)


@router.get("/teams", response_model=list[TeamOut])
async def list_teams(db: DbSession, principal: CurrentPrincipal) -> list[TeamOut]:
    return [TeamOut(id=t.id, name=t.name, member_ids=m)
            for t, m in await service.list_teams(db, principal.workspace_id)]


@router.post("/teams", response_model=TeamOut, status_code=201)
async def create_team(body: TeamCreate, db: DbSession, principal: AdminPrincipal) -> TeamOut:
    team = await service.create_team(db, principal, body.name)
    return TeamOut(id=team.id, name=team.name, member_ids=[])


async def _team_out(db: DbSession, principal: AdminPrincipal, team_id: int) -> TeamOut:
    teams = {t.id: (t, m) for t, m in await service.list_teams(db, principal.workspace_id)}
    team, members = teams[team_id]
    return TeamOut(id=team.id, name=team.name, member_ids=members)


@router.patch("/teams/{team_id}", response_model=TeamOut)
async def rename_team(
    team_id: PathId, body: TeamUpdate, db: DbSession, principal: AdminPrincipal
) -> TeamOut:
    await service.rename_team(db, principal, team_id, body.name)
    return await _team_out(db, principal, team_id)


@router.delete("/teams/{team_id}", status_code=204, response_class=Response)
async def delete_team(team_id: PathId, db: DbSession, principal: AdminPrincipal) -> Response:
    """Delete a team: its conversations stay, without a team (a `conversation.updated`
    each), its members stay in the workspace, saved views stop filtering by it."""
    await service.delete_team(db, principal, team_id)
    return Response(status_code=204)


@router.delete("/teams/{team_id}/members/{user_id}", response_model=TeamOut)
async def remove_team_member(
    team_id: PathId, user_id: PathId, db: DbSession, principal: AdminPrincipal
) -> TeamOut:
    await service.remove_team_member(db, principal, team_id, user_id)
    await db.flush()
    return await _team_out(db, principal, team_id)


@router.post("/teams/{team_id}/members", response_model=TeamOut)
async def add_team_member(
    team_id: PathId, body: TeamMemberAdd, db: DbSession, principal: AdminPrincipal
) -> TeamOut:
    await service.add_team_member(db, principal, team_id, body.user_id)
    await db.flush()
    return await _team_out(db, principal, team_id)


@router.get("/tokens", response_model=list[TokenOut])
async def list_tokens(db: DbSession, principal: CurrentPrincipal) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in await service.list_tokens(db, principal)]


@router.post("/tokens", response_model=TokenCreated, status_code=201)
async def create_token(
    body: TokenCreate, db: DbSession, principal: CurrentPrincipal
) -> TokenCreated:
    row, token = await service.create_token(db, principal.workspace_id, principal.user_id,
                                            body.name)
    return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=token)


@router.delete("/tokens/{token_id}", response_model=TokenOut)
async def revoke_token(token_id: PathId, db: DbSession, principal: CurrentPrincipal) -> TokenOut:
    row = await service.revoke_token(db, principal, token_id)
    forget_cached_tokens()
    return TokenOut.model_validate(row)
