"""Accounts: the only place that changes workspaces, users, memberships, teams and tokens."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.events import ApiTokenEvent, MemberEvent, TeamEvent
from frontdesk.accounts.models import (
    ApiToken,
    Membership,
    Role,
    Team,
    TeamMember,
    User,
    Workspace,
)
from frontdesk.accounts.schemas import TeamOut, TokenOut, UserOut
from frontdesk.core.activity import ActivityEntry, record_activity
from frontdesk.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from frontdesk.core.events import EventType, record_event, record_events
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.db.base import utcnow

# OWASP's argon2id floor (19 MiB, 2 passes, 1 lane): argon2-cffi's defaults (64 MiB, 4
# lanes) took 0.2-0.7 s per sign-in on a 2-core server, a denial of service in waiting.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
TOKEN_PREFIX = "fd_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class Principal:
    """Who is acting: a user in one workspace with that membership's role."""

    user_id: int
    workspace_id: int
    role: Role

    def require(self, role: Role) -> None:
        if not self.role.at_least(role):
            raise Forbidden(f"This needs the {role.value} role; you are {self.role.value}")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


async def ensure_workspace(session: AsyncSession, name: str) -> Workspace:
    name = name.strip()
    if not name:
        raise InvalidInput("A workspace needs a name")
    stmt = select(Workspace).where(Workspace.name == name)
    ws = (await session.execute(stmt)).scalar_one_or_none()
    if ws is None:
        ws = Workspace(name=name)
        session.add(ws)
        await session.flush()
    return ws


async def find_workspace(session: AsyncSession, name: str) -> Workspace:
    stmt = select(Workspace).where(Workspace.name == name)
    ws = (await session.execute(stmt)).scalar_one_or_none()
    if ws is None:
        raise NotFound(f"There is no workspace named '{name}'")
    return ws


async def create_user(
    session: AsyncSession,
    workspace: Workspace,
    *,
    email: str,
    role: Role,
    password: str | None = None,
    name: str = "",
    reset_password: bool = False,
    actor_user_id: int | None = None,
) -> tuple[User, Membership]:
    """Create the user (or find them by e-mail) and make them a member with `role`.

    A user who exists already keeps their password unless `reset_password` (the operator's
    CLI): a user belongs to every workspace they joined, so an admin of one workspace who
    adds them must not be able to set the password they use in the others. A new
    membership is a `member.added`, a changed role a `member.role_changed` (by
    `actor_user_id`; none when the operator's CLI or the demo does it)."""
    email = email.strip().lower()
    user = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
    if user is None:
        user = User(email=email, name=name or email.split("@")[0])
        session.add(user)
        if password:
            user.password_hash = await asyncio.to_thread(hash_password, password)
    elif password and reset_password:
        user.password_hash = await asyncio.to_thread(hash_password, password)
    await session.flush()
    membership = (
        await session.execute(
            select(Membership).where(
                Membership.workspace_id == workspace.id, Membership.user_id == user.id
            )
        )
    ).scalar_one_or_none()
    if membership is None:
        membership = Membership(workspace_id=workspace.id, user_id=user.id, role=role.value)
        session.add(membership)
        _member_event(session, workspace.id, actor_user_id, EventType.MEMBER_ADDED, user, role)
    elif membership.role != role.value:
        _member_event(session, workspace.id, actor_user_id, EventType.MEMBER_ROLE_CHANGED,
                      user, role, {"role": [membership.role, role.value]})
        membership.role = role.value
    await session.flush()
    return user, membership


async def add_member(
    session: AsyncSession, principal: Principal, *, email: str, role: Role,
    password: str | None = None, name: str = "",
) -> tuple[User, Membership]:
    """An admin adds someone to the workspace: a new account, or an existing person (who
    keeps their name and password). Someone already a member is refused: their role
    changes through `change_role`, which keeps the workspace's last admin."""
    principal.require(Role.ADMIN)
    email = email.strip().lower()
    already = (await session.execute(
        select(Membership.user_id).join(User, User.id == Membership.user_id)
        .where(Membership.workspace_id == principal.workspace_id, User.email == email)
    )).scalar_one_or_none()
    if already is not None:
        raise Conflict(f"{email} is already a member; change their role instead",
                       code="already_member", details={"user_id": already})
    workspace = await session.get(Workspace, principal.workspace_id)
    if workspace is None:
        raise NotFound(f"Workspace {principal.workspace_id} was not found")
    user, membership = await create_user(session, workspace, email=email, role=role,
                                         password=password, name=name,
                                         actor_user_id=principal.user_id)
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action="member.added", subject_type="user",
                    subject_id=user.id, changes={"email": email, "role": role.value})
    return user, membership


def _member_event(session: AsyncSession, workspace_id: int, actor_user_id: int | None,
                  type_: EventType, user: User, role: Role,
                  changes: dict[str, object] | None = None) -> None:
    record_event(session, workspace_id, type_, MemberEvent(
        user=UserOut(id=user.id, email=user.email, name=user.name, role=role),
        changes=changes or {}, actor_user_id=actor_user_id))


async def get_member(session: AsyncSession, workspace_id: int, user_id: int) -> tuple[User, Role]:
    row = (
        await session.execute(
            select(User, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.workspace_id == workspace_id, User.id == user_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"User {user_id} was not found")
    return row[0], Role(row[1])


async def list_members(session: AsyncSession, workspace_id: int) -> list[tuple[User, Role]]:
    rows = await session.execute(
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == workspace_id)
        .order_by(User.id)
    )
    return [(u, Role(r)) for u, r in rows.all()]


async def change_role(
    session: AsyncSession, principal: Principal, user_id: int, role: Role
) -> tuple[User, Role]:
    principal.require(Role.ADMIN)
    user, _ = await get_member(session, principal.workspace_id, user_id)
    if user_id == principal.user_id and role != Role.ADMIN:
        raise Conflict("You cannot lower your own role; ask another admin", code="own_account")
    membership = await _membership(session, principal.workspace_id, user_id)
    if membership.role == Role.ADMIN.value and role != Role.ADMIN:
        await _keep_an_admin(session, principal.workspace_id)
    if membership.role != role.value:
        record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                        actor_id=principal.user_id, action="member.role_changed",
                        subject_type="user", subject_id=user_id,
                        changes={"role": [membership.role, role.value]})
        _member_event(session, principal.workspace_id, principal.user_id,
                      EventType.MEMBER_ROLE_CHANGED, user, role,
                      {"role": [membership.role, role.value]})
    membership.role = role.value
    return user, role


async def _membership(session: AsyncSession, workspace_id: int, user_id: int) -> Membership:
    membership = (
        await session.execute(
            select(Membership).where(
                Membership.workspace_id == workspace_id, Membership.user_id == user_id
            ).with_for_update()
        )
    ).scalar_one_or_none()
    if membership is None:
        raise NotFound(f"User {user_id} was not found")
    return membership


async def _keep_an_admin(session: AsyncSession, workspace_id: int) -> None:
    """Refuse a change that would take away the workspace's last admin: nobody could manage
    it any more except the operator with the CLI. The admins' rows are locked, so two
    admins demoting each other at once cannot both succeed (on SQLite the write lock of
    the transaction already serialises them)."""
    admins = (await session.execute(
        select(Membership.user_id).where(Membership.workspace_id == workspace_id,
                                         Membership.role == Role.ADMIN.value).with_for_update()
    )).scalars().all()
    if len(admins) <= 1:
        raise Conflict("This is the workspace's last admin; make someone else admin first",
                       code="last_admin")


async def remove_member(session: AsyncSession, principal: Principal, user_id: int) -> User:
    """Deactivate a member in this workspace: the membership ends (their sessions here stop
    working on their next request, their API tokens here are revoked), they leave its
    teams, and their unfinished conversations go back to the unassigned queue. The person
    and their history stay: messages keep their author, and they can be invited back."""
    principal.require(Role.ADMIN)
    user, _ = await get_member(session, principal.workspace_id, user_id)
    if user_id == principal.user_id:
        raise Conflict("You cannot deactivate yourself; ask another admin", code="own_account")
    membership = await _membership(session, principal.workspace_id, user_id)
    if membership.role == Role.ADMIN.value:
        await _keep_an_admin(session, principal.workspace_id)
    # Imported here: conversations' service builds on this module (Principal, members).
    from frontdesk.conversations import service as conversations
    from frontdesk.conversations.models import CONTINUABLE_STATUSES, Conversation
    from frontdesk.conversations.schemas import AssignIn

    unfinished = (await session.execute(
        select(Conversation.id, Conversation.team_id)
        .where(Conversation.workspace_id == principal.workspace_id,
               Conversation.assignee_id == user_id,
               Conversation.status.in_(CONTINUABLE_STATUSES))
        .order_by(Conversation.id)
    )).tuples().all()
    for conversation_id, team_id in unfinished:
        await conversations.assign_conversation(
            session, principal, conversation_id, AssignIn(assignee_id=None, team_id=team_id))
    await session.execute(delete(TeamMember).where(
        TeamMember.workspace_id == principal.workspace_id, TeamMember.user_id == user_id))
    # Revoked, not merely unusable while the membership is gone: inviting them back must
    # not bring back a token that was out in the world when they left.
    revoked = (await session.execute(
        update(ApiToken)
        .where(ApiToken.workspace_id == principal.workspace_id, ApiToken.user_id == user_id,
               ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(ApiToken)
        .execution_options(synchronize_session=False))).scalars().all()
    await record_events(session, principal.workspace_id, EventType.API_TOKEN_REVOKED, [
        ApiTokenEvent(token=TokenOut.model_validate(t), actor_user_id=principal.user_id)
        for t in sorted(revoked, key=lambda t: t.id)])
    await session.delete(membership)
    await session.flush()
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action="member.removed", subject_type="user",
                    subject_id=user_id, changes={"email": user.email, "role": membership.role,
                                                 "unassigned": [c for c, _ in unfinished]})
    _member_event(session, principal.workspace_id, principal.user_id, EventType.MEMBER_REMOVED,
                  user, Role(membership.role), {"unassigned": [c for c, _ in unfinished]})
    return user


async def list_former_members(session: AsyncSession,
                              principal: Principal) -> list[tuple[User, Role]]:
    """The people deactivated in this workspace who are not members again, each with the
    role they had when they left, most recently deactivated first. Removal ends the
    membership row; the activity log is where the workspace remembers who it was."""
    principal.require(Role.ADMIN)
    rows = (await session.execute(
        select(ActivityEntry.subject_id, ActivityEntry.changes)
        .where(ActivityEntry.workspace_id == principal.workspace_id,
               ActivityEntry.action == "member.removed", ActivityEntry.subject_type == "user",
               ActivityEntry.subject_id.not_in(
                   select(Membership.user_id)
                   .where(Membership.workspace_id == principal.workspace_id)))
        .order_by(ActivityEntry.id.desc()))).tuples().all()
    last_role: dict[int, Role] = {}
    for user_id, changes in rows:
        last_role.setdefault(user_id, _known_role((changes or {}).get("role")))
    users = {u.id: u for u in (await session.execute(
        select(User).where(User.id.in_(list(last_role))))).scalars()} if last_role else {}
    return [(users[user_id], role) for user_id, role in last_role.items() if user_id in users]


def _known_role(value: object) -> Role:
    return Role(value) if value in {r.value for r in Role} else Role.AGENT


async def reactivate_member(
    session: AsyncSession, principal: Principal, user_id: int, role: Role
) -> User:
    """Bring back someone deactivated in this workspace, with `role`: the inverse of
    `remove_member` where it can be. The membership returns (they sign in here again with
    their own password); the API tokens revoked when they left stay revoked (a token out
    in the world then must not come back to life: they make new ones), their teams and the
    conversations sent back to the queue are not given back (work moved on; an admin adds
    them to teams again). Only a former member of this workspace can be reactivated: any
    other id is 404, a current member 409 `already_member`."""
    principal.require(Role.ADMIN)
    former = {user.id: user for user, _ in await list_former_members(session, principal)}
    user = former.get(user_id)
    if user is None:
        member = (await session.execute(select(Membership.id).where(
            Membership.workspace_id == principal.workspace_id,
            Membership.user_id == user_id))).scalar_one_or_none()
        if member is not None:
            raise Conflict(f"User {user_id} is a member already", code="already_member",
                           details={"user_id": user_id})
        raise NotFound(f"User {user_id} was not found among the deactivated members")
    session.add(Membership(workspace_id=principal.workspace_id, user_id=user.id,
                           role=role.value))
    await session.flush()
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action="member.reactivated",
                    subject_type="user", subject_id=user.id,
                    changes={"email": user.email, "role": role.value})
    _member_event(session, principal.workspace_id, principal.user_id,
                  EventType.MEMBER_REACTIVATED, user, role)
    return user


async def create_token(
    session: AsyncSession, workspace_id: int, user_id: int, name: str = ""
) -> tuple[ApiToken, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        workspace_id=workspace_id,
        user_id=user_id,
        name=name,
        token_hash=hash_token(token),
        prefix=token[:10],
    )
    session.add(row)
    await session.flush()
    record_event(session, workspace_id, EventType.API_TOKEN_CREATED,
                 ApiTokenEvent(token=TokenOut.model_validate(row), actor_user_id=user_id))
    return row, token


async def create_token_for_email(
    session: AsyncSession, workspace_name: str, email: str, name: str = ""
) -> str:
    ws = await find_workspace(session, workspace_name)
    user = (
        await session.execute(select(User).where(User.email == email.strip().lower()))
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"There is no user {email}")
    await get_member(session, ws.id, user.id)
    _, token = await create_token(session, ws.id, user.id, name)
    return token


async def principal_for_token(session: AsyncSession, token: str) -> Principal | None:
    row = (
        await session.execute(
            select(ApiToken.user_id, ApiToken.workspace_id, Membership.role)
            .join(
                Membership,
                (Membership.user_id == ApiToken.user_id)
                & (Membership.workspace_id == ApiToken.workspace_id),
            )
            .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
        )
    ).one_or_none()
    if row is None:
        return None
    return Principal(user_id=row[0], workspace_id=row[1], role=Role(row[2]))


async def list_tokens(session: AsyncSession, principal: Principal) -> list[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.workspace_id == principal.workspace_id)
    if not principal.role.at_least(Role.ADMIN):
        stmt = stmt.where(ApiToken.user_id == principal.user_id)
    return list((await session.execute(stmt.order_by(ApiToken.id))).scalars())


async def revoke_token(session: AsyncSession, principal: Principal, token_id: int) -> ApiToken:
    row = await get_in_workspace(session, ApiToken, principal.workspace_id, token_id, what="Token")
    if row.user_id != principal.user_id and not principal.role.at_least(Role.ADMIN):
        raise NotFound(f"Token {token_id} was not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        record_event(session, principal.workspace_id, EventType.API_TOKEN_REVOKED,
                     ApiTokenEvent(token=TokenOut.model_validate(row),
                                   actor_user_id=principal.user_id))
    return row


async def create_team(session: AsyncSession, principal: Principal, name: str) -> Team:
    principal.require(Role.ADMIN)
    exists = (
        await session.execute(
            select(Team.id).where(Team.workspace_id == principal.workspace_id, Team.name == name)
        )
    ).scalar_one_or_none()
    if exists is not None:
        raise Conflict(f"A team named '{name}' already exists")
    team = Team(workspace_id=principal.workspace_id, name=name)
    session.add(team)
    await session.flush()
    await _team_event(session, principal, EventType.TEAM_CREATED, team)
    return team


async def _team_event(session: AsyncSession, principal: Principal, type_: EventType, team: Team,
                      *, changes: dict[str, object] | None = None,
                      user_id: int | None = None) -> None:
    await session.flush()  # the team's members as they are now
    member_ids = (await session.execute(
        select(TeamMember.user_id).where(TeamMember.team_id == team.id)
        .order_by(TeamMember.user_id))).scalars().all()
    record_event(session, principal.workspace_id, type_, TeamEvent(
        team=TeamOut(id=team.id, name=team.name, member_ids=list(member_ids)),
        changes=changes or {}, user_id=user_id, actor_user_id=principal.user_id))


async def list_teams(session: AsyncSession, workspace_id: int) -> list[tuple[Team, list[int]]]:
    stmt = select(Team).where(Team.workspace_id == workspace_id).order_by(Team.id)
    teams = list((await session.execute(stmt)).scalars())
    members = await session.execute(
        select(TeamMember.team_id, TeamMember.user_id)
        .where(TeamMember.workspace_id == workspace_id)
    )
    by_team: dict[int, list[int]] = {}
    for team_id, user_id in members.all():
        by_team.setdefault(team_id, []).append(user_id)
    return [(t, sorted(by_team.get(t.id, []))) for t in teams]


async def add_team_member(
    session: AsyncSession, principal: Principal, team_id: int, user_id: int
) -> Team:
    principal.require(Role.ADMIN)
    team = await get_in_workspace(session, Team, principal.workspace_id, team_id, what="Team")
    await get_member(session, principal.workspace_id, user_id)
    exists = await session.get(TeamMember, (team_id, user_id))
    if exists is None:
        session.add(TeamMember(team_id=team_id, user_id=user_id, workspace_id=team.workspace_id))
        await _team_event(session, principal, EventType.TEAM_MEMBER_ADDED, team, user_id=user_id)
    return team


async def get_team(session: AsyncSession, principal: Principal, team_id: int) -> Team:
    return await get_in_workspace(session, Team, principal.workspace_id, team_id, what="Team")


async def rename_team(session: AsyncSession, principal: Principal, team_id: int, name: str) -> Team:
    principal.require(Role.ADMIN)
    team = await get_team(session, principal, team_id)
    name = name.strip()
    if not name:
        raise InvalidInput("A team needs a name", code="empty_name",
                           details=[{"field": "body.name", "message": "is empty"}])
    if name == team.name:
        return team
    taken = (await session.execute(
        select(Team.id).where(Team.workspace_id == principal.workspace_id, Team.name == name)
    )).scalar_one_or_none()
    if taken is not None:
        raise Conflict(f"A team named '{name}' already exists", details={"team_id": taken})
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action="team.renamed", subject_type="team",
                    subject_id=team.id, changes={"name": [team.name, name]})
    changes: dict[str, object] = {"name": [team.name, name]}
    team.name = name
    await _team_event(session, principal, EventType.TEAM_UPDATED, team, changes=changes)
    return team


async def delete_team(session: AsyncSession, principal: Principal, team_id: int) -> Team:
    """Delete a team. Its conversations stay, with no team (one UPDATE, and a
    `conversation.updated` each with `changes.team_id = [id, null]`, in one multi-row
    insert); its members stay members of the workspace; saved views filtering by it stop
    filtering by team (their other filters stay). Event `team.deleted` (the team as it was,
    with its members; `changes.conversations`: how many lost it)."""
    principal.require(Role.ADMIN)
    team = await get_team(session, principal, team_id)
    # Imported here: conversations' service builds on this module (Principal, members).
    from frontdesk.conversations.events import ConversationEvent
    from frontdesk.conversations.models import Conversation
    from frontdesk.conversations.service import to_out_many
    from frontdesk.inbox_views.models import InboxView

    member_ids = list((await session.execute(
        select(TeamMember.user_id).where(TeamMember.team_id == team.id)
        .order_by(TeamMember.user_id))).scalars())
    released = list((await session.execute(
        update(Conversation)
        .where(Conversation.workspace_id == principal.workspace_id,
               Conversation.team_id == team.id)
        .values(team_id=None)
        .returning(Conversation)
        .execution_options(populate_existing=True))).scalars())
    released.sort(key=lambda c: c.id)
    await record_events(session, principal.workspace_id, EventType.CONVERSATION_UPDATED, [
        ConversationEvent(conversation=out, changes={"team_id": [team.id, None]},
                          actor_user_id=principal.user_id)
        for out in await to_out_many(session, released)])
    # The views' filters are JSON: read the workspace's views (at most VIEWS_PER_PERSON a
    # person) and take the team out of those that name it.
    for view in (await session.execute(
            select(InboxView).where(InboxView.workspace_id == principal.workspace_id)
            .with_for_update())).scalars():
        if (view.filters or {}).get("team_id") == team.id:
            before = dict(view.filters)
            view.filters = {**before, "team_id": None}
            record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                            actor_id=principal.user_id, action="inbox_view.updated",
                            subject_type="inbox_view", subject_id=view.id,
                            changes={"filters": [before, view.filters],
                                     "reason": "team.deleted"})
    # The links explicitly: SQLite enforces ON DELETE CASCADE only with foreign keys on.
    await session.execute(delete(TeamMember).where(TeamMember.team_id == team.id,
                                                   TeamMember.workspace_id == team.workspace_id))
    await session.execute(delete(Team).where(Team.id == team.id,
                                             Team.workspace_id == team.workspace_id))
    await session.flush()
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action="team.deleted", subject_type="team",
                    subject_id=team.id, changes={"name": team.name, "member_ids": member_ids,
                                                 "conversations": len(released)})
    record_event(session, principal.workspace_id, EventType.TEAM_DELETED, TeamEvent(
        team=TeamOut(id=team.id, name=team.name, member_ids=member_ids),
        changes={"conversations": len(released)}, actor_user_id=principal.user_id))
    return team


async def remove_team_member(
    session: AsyncSession, principal: Principal, team_id: int, user_id: int
) -> Team:
    """Idempotent: removing someone who is not (or no longer) in the team changes nothing."""
    principal.require(Role.ADMIN)
    team = await get_team(session, principal, team_id)
    await get_member(session, principal.workspace_id, user_id)
    removed = (await session.execute(delete(TeamMember).where(
        TeamMember.team_id == team.id, TeamMember.user_id == user_id,
        TeamMember.workspace_id == principal.workspace_id)
        .returning(TeamMember.user_id))).first()
    if removed is not None:
        await _team_event(session, principal, EventType.TEAM_MEMBER_REMOVED, team,
                          user_id=user_id)
    return team
