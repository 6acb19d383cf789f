"""The admin area: members and roles, teams, inboxes, tags (of conversations and of
contacts), webhooks and API tokens.

Roles as in the REST API (see web/roles.py): supervisors may look at members and teams,
everything else and every change is for admins. Every change goes through the services
the API uses; a rule a person can act on (the last admin, a taken name) comes back as a
flash on the same page.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import BackgroundTasks, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from frontdesk.accounts import service as accounts
from frontdesk.accounts.auth import forget_cached_tokens
from frontdesk.accounts.models import Role
from frontdesk.accounts.schemas import UserInvite
from frontdesk.channels import service as channels
from frontdesk.contacts import tags as contact_tags
from frontdesk.conversations import tags as tag_vocabulary
from frontdesk.core.deps import DbSession, RuntimeDep
from frontdesk.core.errors import Forbidden, FrontdeskError, InvalidInput, NotFound
from frontdesk.core.events import PUBLIC_EVENTS
from frontdesk.core.ids import PathId
from frontdesk.web.i18n import N_
from frontdesk.web.pages import base_context, flash, redirect, web_router
from frontdesk.web.roles import AdminAgent, SupervisorAgent
from frontdesk.web.session import Agent
from frontdesk.web.templating import render
from frontdesk.webhooks import service as webhooks
from frontdesk.webhooks.models import DeliveryStatus
from frontdesk.webhooks.schemas import ALL_EVENTS, WebhookCreate, WebhookUpdate

router = web_router()

NAME_LIMIT = 200
DELIVERY_PAGE = 50

# What a refused change says, by the service's error code; the services' own messages are
# English sentences for API clients.
REFUSALS = {
    "already_member": N_("That person is already a member; change their role in the list."),
    "last_admin": N_("This is the workspace's last admin. Make someone else admin first."),
    "own_account": N_("You cannot do that to your own account. Ask another admin."),
    "conflict": N_("That name is already taken."),
    "unsafe_url": N_("That URL is not allowed: it must be a public http(s) address."),
    "unresolvable_url": N_("That URL's host name does not resolve."),
    "webhook_inactive": N_("This webhook is inactive; activate it first."),
}
DELIVERY_STATE_LABELS = {"pending": N_("Waiting"), "succeeded": N_("Delivered"),
                         "failed": N_("Failed")}
CHANNEL_LABELS = {"api": N_("API"), "email": N_("E-mail")}
GENERIC_REFUSAL = N_("That could not be saved. Check what you entered and try again.")


def _refused(request: Request, exc: FrontdeskError, back: str) -> Response:
    """A change the service refused: say why on the page it came from. A role refusal or an
    unknown id (a stale page, a forged form, another workspace's id) stays the error page,
    as on every other route."""
    if isinstance(exc, Forbidden | NotFound):
        raise exc
    flash(request, REFUSALS.get(exc.code, GENERIC_REFUSAL), "error")
    return redirect(request, back)


def _admin_page(request: Request, agent: Agent, template: str, section: str,
                **extra: Any) -> Response:
    return render(request, template, base_context(request, agent, section=section, **extra))


# --- members ----------------------------------------------------------------------------


@router.get("/admin")
async def admin_root(request: Request, agent: SupervisorAgent) -> Response:
    return redirect(request, "/app/admin/users")


@router.get("/admin/users")
async def users_page(request: Request, db: DbSession, agent: SupervisorAgent) -> Response:
    members = await accounts.list_members(db, agent.workspace.id)
    teams = await accounts.list_teams(db, agent.workspace.id)
    teams_of: dict[int, list[str]] = {}
    for team, member_ids in teams:
        for user_id in member_ids:
            teams_of.setdefault(user_id, []).append(team.name)
    admins = sum(1 for _, role in members if role is Role.ADMIN)
    former = (await accounts.list_former_members(db, agent.principal)
              if agent.principal.role.at_least(Role.ADMIN) else [])
    return _admin_page(request, agent, "admin/users.html", "users", members=members,
                       teams_of=teams_of, admins=admins, roles=list(Role), former=former)


@router.post("/admin/users")
async def invite_user(
    request: Request, db: DbSession, agent: AdminAgent,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=NAME_LIMIT)] = "",
    role: Annotated[str, Form(max_length=20)] = Role.AGENT.value,
    password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        invite = UserInvite(email=email, name=name.strip(), role=role,
                            password=password or None)
    except ValidationError as exc:
        fields = {str(e["loc"][0]) for e in exc.errors()}
        message = (N_("Enter a valid e-mail address.") if "email" in fields
                   else N_("A password needs at least 8 characters.") if "password" in fields
                   else GENERIC_REFUSAL)
        flash(request, message, "error")
        return redirect(request, "/app/admin/users")
    try:
        await accounts.add_member(db, agent.principal, email=invite.email, role=invite.role,
                                  password=invite.password, name=invite.name)
    except FrontdeskError as exc:
        return _refused(request, exc, "/app/admin/users")
    flash(request, N_("The member is added. Existing accounts keep their own password."))
    return redirect(request, "/app/admin/users")


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError as exc:
        raise InvalidInput(N_("Choose a role."), code="bad_role") from exc


@router.post("/admin/users/{user_id}/role")
async def change_role(
    user_id: PathId, request: Request, db: DbSession, agent: AdminAgent,
    role: Annotated[str, Form(max_length=20)],
) -> Response:
    new_role = _role(role)
    try:
        await accounts.change_role(db, agent.principal, user_id, new_role)
    except FrontdeskError as exc:
        return _refused(request, exc, "/app/admin/users")
    forget_cached_tokens()
    flash(request, N_("The role is changed."))
    return redirect(request, "/app/admin/users")


@router.post("/admin/users/{user_id}/deactivate")
async def deactivate_user(
    user_id: PathId, request: Request, db: DbSession, agent: AdminAgent
) -> Response:
    try:
        await accounts.remove_member(db, agent.principal, user_id)
    except FrontdeskError as exc:
        return _refused(request, exc, "/app/admin/users")
    forget_cached_tokens()
    flash(request, N_("The member is deactivated; their open conversations are unassigned."))
    return redirect(request, "/app/admin/users")


@router.post("/admin/users/{user_id}/reactivate")
async def reactivate_user(
    user_id: PathId, request: Request, db: DbSession, agent: AdminAgent,
    role: Annotated[str, Form(max_length=20)] = Role.AGENT.value,
) -> Response:
    new_role = _role(role)
    try:
        await accounts.reactivate_member(db, agent.principal, user_id, new_role)
    except FrontdeskError as exc:
        return _refused(request, exc, "/app/admin/users")
    flash(request, N_("The member is back, with the role you chose."))
    return redirect(request, "/app/admin/users")


# --- teams ------------------------------------------------------------------------------


@router.get("/admin/teams")
async def teams_page(request: Request, db: DbSession, agent: SupervisorAgent) -> Response:
    members = await accounts.list_members(db, agent.workspace.id)
    return _admin_page(request, agent, "admin/teams.html", "teams",
                       teams=await accounts.list_teams(db, agent.workspace.id),
                       people={user.id: user for user, _ in members})


@router.post("/admin/teams")
async def create_team(
    request: Request, db: DbSession, agent: AdminAgent,
    name: Annotated[str, Form(max_length=NAME_LIMIT)] = "",
) -> Response:
    if not name.strip():
        flash(request, N_("Give the team a name."), "error")
        return redirect(request, "/app/admin/teams")
    try:
        await accounts.create_team(db, agent.principal, name.strip())
    except FrontdeskError as exc:
        return _refused(request, exc, "/app/admin/teams")
    flash(request, N_("The team is created."))
    return redirect(request, "/app/admin/teams")


@router.post("/admin/teams/{team_id}/rename")
async def rename_team(
    team_id: PathId, request: Request, db: DbSession, agent: AdminAgent,
    name: Annotated[str, Form(max_length=NAME_LIMIT)] = "",
) -> Response:
    try:
        await accounts.rename_team(db, agent.principal, team_id, name)
    except FrontdeskError as exc:
        return _refused(request, exc, "/app/admin/teams")
    flash(request, N_("The team is renamed."))
    return redirect(request, "/app/admin/teams")


@router.post("/admin/teams/{team_id}/delete")
async def delete_team(
    team_id: PathId, request: Request, db: DbSession, agent: AdminAgent
) -> Response:
    await accounts.delete_team(db, agent.principal, team_id)
    flash(request, N_("The team is deleted; its conversations no longer have a team."))
    return redirect(request, "/app/admin/teams")


@router.post("/admin/teams/{team_id}/members")
async def add_team_member(
    team_id: PathId, request: Request, db: DbSession, agent: AdminAgent,
    user_id: Annotated[int, Form(ge=1)],
) -> Response:
    try:
        await accounts.add_team_member(db, agent.principal, team_id, user_id)
    except FrontdeskError as exc:
        return _refused(request, exc, "/app/admin/teams")
    flash(request, N_("The team has a new member."))
    return redirect(request, "/app/admin/teams")


@router.post("/admin/teams/{team_id}/members/{user_id}/remove")
async def remove_team_member(
    team_id: PathId, user_id: PathId, request: Request, db: DbSession, agent: AdminAgent
) -> Response:
    try:
        await accounts.remove_team_member(db, agent.principal, team_id, user_id)
    except FrontdeskError as exc:
        return _refused(request, exc, "/app/admin/teams")
    flash(request, N_("The member has left the team."))
    return redirect(request, "/app/admin/teams")


# --- inboxes ----------------------------------------------------------------------------


@router.get("/admin/inboxes")
async def inboxes_page(request: Request, db: DbSession, agent: AdminAgent) -> Response:
    return _admin_page(request, agent, "admin/inboxes.html", "inboxes",
                       inboxes=await channels.list_inboxes(db, agent.principal),
                       channel_labels=CHANNEL_LABELS)


@router.post("/admin/inboxes")
async def create_inbox(
    request: Request, db: DbSession, agent: AdminAgent,
    name: Annotated[str, Form(max_length=NAME_LIMIT)] = "",
) -> Response:
    if not name.strip():
        flash(request, N_("Give the inbox a name."), "error")
        return redirect(request, "/app/admin/inboxes")
    await channels.create_inbox(db, agent.principal, name=name.strip(), channel="api")
    flash(request, N_("The API inbox is created."))
    return redirect(request, "/app/admin/inboxes")


@router.post("/admin/inboxes/{inbox_id}/rename")
async def rename_inbox(
    inbox_id: PathId, request: Request, db: DbSession, agent: AdminAgent,
    name: Annotated[str, Form(max_length=NAME_LIMIT)] = "",
) -> Response:
    if not name.strip():
        flash(request, N_("Give the inbox a name."), "error")
        return redirect(request, "/app/admin/inboxes")
    await channels.rename_inbox(db, agent.principal, inbox_id, name.strip())
    flash(request, N_("The inbox is renamed."))
    return redirect(request, "/app/admin/inboxes")


@router.post("/admin/inboxes/{inbox_id}/disable")
async def disable_inbox(
    inbox_id: PathId, request: Request, db: DbSession, agent: AdminAgent, runtime: RuntimeDep,
    background: BackgroundTasks,
) -> Response:
    await channels.disable_inbox(db, agent.principal, inbox_id)
    background.add_task(runtime.imap_pollers.wake)  # after the commit: stop its mailbox
    flash(request, N_("The inbox is disabled: it takes no new messages."))
    return redirect(request, "/app/admin/inboxes")


@router.post("/admin/inboxes/{inbox_id}/enable")
async def enable_inbox(
    inbox_id: PathId, request: Request, db: DbSession, agent: AdminAgent, runtime: RuntimeDep,
    background: BackgroundTasks,
) -> Response:
    await channels.enable_inbox(db, agent.principal, inbox_id)
    background.add_task(runtime.imap_pollers.wake)
    flash(request, N_("The inbox is enabled: it takes messages again."))
    return redirect(request, "/app/admin/inboxes")


# --- tags -------------------------------------------------------------------------------


@router.get("/admin/tags")
async def tags_page(request: Request, db: DbSession, agent: AdminAgent) -> Response:
    """Conversation tags and contact tags: two vocabularies, each with its own counts."""
    return _admin_page(request, agent, "admin/tags.html", "tags",
                       tags=await tag_vocabulary.list_tag_usage(db, agent.principal),
                       contact_tags=await contact_tags.list_contact_tag_usage(db, agent.principal))


async def _change_then_back(request: Request, change: Awaitable[object], done: str,
                            back: str) -> Response:
    """Run a service change; back to `back` with `done` flashed, or with the refusal."""
    try:
        await change
    except FrontdeskError as exc:
        return _refused(request, exc, back)
    flash(request, done)
    return redirect(request, back)


_TagName = Annotated[str, Form(max_length=100)]
_NewTagName = Annotated[str, Form(max_length=200)]
_CONTACT_TAGS = "/app/admin/tags#contact-tags-title"


@router.post("/admin/tags/rename")
async def rename_tag(request: Request, db: DbSession, agent: AdminAgent, name: _TagName,
                     new_name: _NewTagName) -> Response:
    return await _change_then_back(
        request, tag_vocabulary.rename_tag(db, agent.principal, name, new_name),
        N_("The tag is renamed on every conversation."), "/app/admin/tags")


@router.post("/admin/tags/delete")
async def delete_tag(request: Request, db: DbSession, agent: AdminAgent,
                     name: _TagName) -> Response:
    return await _change_then_back(
        request, tag_vocabulary.delete_tag(db, agent.principal, name),
        N_("The tag is deleted from every conversation."), "/app/admin/tags")


@router.post("/admin/contact-tags/rename")
async def rename_contact_tag(request: Request, db: DbSession, agent: AdminAgent,
                             name: _TagName, new_name: _NewTagName) -> Response:
    return await _change_then_back(
        request, contact_tags.rename_contact_tag(db, agent.principal, name, new_name),
        N_("The tag is renamed on every contact."), _CONTACT_TAGS)


@router.post("/admin/contact-tags/delete")
async def delete_contact_tag(request: Request, db: DbSession, agent: AdminAgent,
                             name: _TagName) -> Response:
    return await _change_then_back(
        request, contact_tags.delete_contact_tag(db, agent.principal, name),
        N_("The tag is deleted from every contact."), _CONTACT_TAGS)


# --- webhooks ---------------------------------------------------------------------------


def _webhooks_context(**extra: Any) -> dict[str, Any]:
    return {"event_types": [e.value for e in PUBLIC_EVENTS], **extra}


@router.get("/admin/webhooks")
async def webhooks_page(request: Request, db: DbSession, agent: AdminAgent) -> Response:
    return _admin_page(request, agent, "admin/webhooks.html", "webhooks", **_webhooks_context(
        webhooks=await webhooks.list_subscriptions(db, agent.principal), created=None))


@router.post("/admin/webhooks")
async def create_webhook(
    request: Request, db: DbSession, agent: AdminAgent, runtime: RuntimeDep,
    url: Annotated[str, Form(max_length=2048)] = "",
    description: Annotated[str, Form(max_length=500)] = "",
    events: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:
    try:
        data = WebhookCreate(url=url.strip(), description=description.strip(),
                             events=events or [ALL_EVENTS])
    except ValidationError:
        flash(request, N_("Enter an http(s) URL and choose the events to send."), "error")
        return redirect(request, "/app/admin/webhooks")
    try:
        created = await webhooks.create_subscription(
            db, agent.principal, data, allow_private=runtime.settings.webhooks_allow_private)
    except FrontdeskError as exc:
        return _refused(request, exc, "/app/admin/webhooks")
    # The secret is shown in this answer only: never in a redirect, a flash or a log.
    return _admin_page(request, agent, "admin/webhooks.html", "webhooks", **_webhooks_context(
        webhooks=await webhooks.list_subscriptions(db, agent.principal), created=created))


@router.get("/admin/webhooks/{webhook_id}")
async def webhook_page(
    webhook_id: PathId, request: Request, db: DbSession, agent: AdminAgent,
    status: str = "", cursor: str | None = None,
) -> Response:
    subscription = await webhooks.get_subscription(db, agent.principal, webhook_id)
    chosen = DeliveryStatus(status) if status in {s.value for s in DeliveryStatus} else None
    deliveries, next_cursor = await webhooks.list_deliveries(
        db, agent.principal, webhook_id, status=chosen, cursor=cursor, limit=DELIVERY_PAGE)
    return _admin_page(request, agent, "admin/webhook.html", "webhooks", webhook=subscription,
                       event_types=[e.value for e in PUBLIC_EVENTS],
                       deliveries=deliveries, next_cursor=next_cursor, status=status,
                       statuses=[s.value for s in DeliveryStatus],
                       DELIVERY_STATE_LABELS=DELIVERY_STATE_LABELS)


@router.post("/admin/webhooks/{webhook_id}/edit")
async def edit_webhook(
    webhook_id: PathId, request: Request, db: DbSession, agent: AdminAgent, runtime: RuntimeDep,
    url: Annotated[str, Form(max_length=2048)] = "",
    description: Annotated[str, Form(max_length=500)] = "",
    events: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:
    back = f"/app/admin/webhooks/{webhook_id}"
    try:
        patch = WebhookUpdate(url=url.strip(), description=description.strip(),
                              events=events or [ALL_EVENTS])
    except ValidationError:
        flash(request, N_("Enter an http(s) URL and choose the events to send."), "error")
        return redirect(request, back)
    try:
        await webhooks.update_subscription(db, agent.principal, webhook_id, patch,
                                           allow_private=runtime.settings.webhooks_allow_private)
    except FrontdeskError as exc:
        return _refused(request, exc, back)
    flash(request, N_("The webhook is saved."))
    return redirect(request, back)


@router.post("/admin/webhooks/{webhook_id}/active")
async def set_webhook_active(
    webhook_id: PathId, request: Request, db: DbSession, agent: AdminAgent, runtime: RuntimeDep,
    active: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    await webhooks.update_subscription(
        db, agent.principal, webhook_id, WebhookUpdate(active=active == "1"),
        allow_private=runtime.settings.webhooks_allow_private)
    flash(request, N_("The webhook is switched on.") if active == "1"
          else N_("The webhook is switched off."))
    return redirect(request, f"/app/admin/webhooks/{webhook_id}")


@router.post("/admin/webhooks/{webhook_id}/delete")
async def delete_webhook(
    webhook_id: PathId, request: Request, db: DbSession, agent: AdminAgent
) -> Response:
    await webhooks.delete_subscription(db, agent.principal, webhook_id)
    flash(request, N_("The webhook is deleted, with its delivery log."))
    return redirect(request, "/app/admin/webhooks")


@router.post("/admin/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
async def retry_delivery(
    webhook_id: PathId, delivery_id: PathId, request: Request, db: DbSession,
    agent: AdminAgent, runtime: RuntimeDep,
) -> Response:
    back = f"/app/admin/webhooks/{webhook_id}"
    try:
        await webhooks.retry_delivery(db, agent.principal, webhook_id, delivery_id)
    except FrontdeskError as exc:
        return _refused(request, exc, back)
    runtime.webhook_sender.wake_after_commit(db)
    flash(request, N_("The delivery is queued to be sent again."))
    return redirect(request, back)


# --- API tokens -------------------------------------------------------------------------


async def _tokens_page(request: Request, db: DbSession, agent: Agent,
                       created: str | None) -> Response:
    members = await accounts.list_members(db, agent.workspace.id)
    return _admin_page(request, agent, "admin/tokens.html", "tokens",
                       tokens=await accounts.list_tokens(db, agent.principal),
                       people={user.id: user for user, _ in members}, created=created)


@router.get("/admin/tokens")
async def tokens_page(request: Request, db: DbSession, agent: AdminAgent) -> Response:
    return await _tokens_page(request, db, agent, None)


@router.post("/admin/tokens")
async def create_token(
    request: Request, db: DbSession, agent: AdminAgent,
    name: Annotated[str, Form(max_length=NAME_LIMIT)] = "",
) -> Response:
    # A token acts as the person it belongs to, so an admin makes tokens for themselves
    # only: one made for a member would let the admin act in their name.
    _, token = await accounts.create_token(db, agent.workspace.id, agent.user.id, name.strip())
    return await _tokens_page(request, db, agent, token)


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke_token(
    token_id: PathId, request: Request, db: DbSession, agent: AdminAgent
) -> Response:
    await accounts.revoke_token(db, agent.principal, token_id)
    forget_cached_tokens()
    flash(request, N_("The token is revoked; it stops working at once."))
    return redirect(request, "/app/admin/tokens")


__all__ = ["router"]
