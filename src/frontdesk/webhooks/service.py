"""Webhook subscriptions and their delivery log: the only place that changes them.

Every URL is checked by the SSRF guard when it is set (and again before every send, in
delivery.py: DNS may have changed since). Services never commit; the request or the
sender's job does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.core.activity import record_activity
from frontdesk.core.errors import Conflict, InvalidInput, NotFound
from frontdesk.core.events import EventType, record_event
from frontdesk.core.ids import is_storable_id
from frontdesk.core.netguard import check_url
from frontdesk.core.pagination import decode_id_cursor, encode_cursor
from frontdesk.core.tenancy import get_in_workspace
from frontdesk.db.base import utcnow
from frontdesk.webhooks.events import WebhookEvent
from frontdesk.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from frontdesk.webhooks.schemas import WebhookCreate, WebhookOut, WebhookUpdate
from frontdesk.webhooks.signing import new_secret


def _log(
    session: AsyncSession, workspace_id: int, actor_id: int | None, action: str,
    subscription_id: int, changes: dict[str, Any],
) -> None:
    # Never the secret: the activity log is readable by more people than the secret is.
    record_activity(session, workspace_id=workspace_id,
                    actor_type="user" if actor_id is not None else "system", actor_id=actor_id,
                    action=action, subject_type="webhook", subject_id=subscription_id,
                    changes=changes)


def _event(session: AsyncSession, type_: EventType, subscription: WebhookSubscription,
           actor_id: int | None, changes: dict[str, Any] | None = None) -> None:
    # WebhookOut: never the secret.
    record_event(session, subscription.workspace_id, type_, WebhookEvent(
        webhook=WebhookOut.model_validate(subscription), changes=changes or {},
        actor_user_id=actor_id))


async def create_subscription(
    session: AsyncSession, principal: Principal, data: WebhookCreate, *, allow_private: bool
) -> WebhookSubscription:
    """The new subscription; its `secret` is for the caller to show once."""
    principal.require(Role.ADMIN)
    await check_url(data.url, allow_private)
    subscription = WebhookSubscription(
        workspace_id=principal.workspace_id, url=data.url.strip(), events=data.events,
        secret=new_secret(), active=data.active, description=data.description,
    )
    session.add(subscription)
    await session.flush()
    _log(session, principal.workspace_id, principal.user_id, "webhook.created", subscription.id,
         {"url": subscription.url, "events": subscription.events, "active": data.active})
    _event(session, EventType.WEBHOOK_CREATED, subscription, principal.user_id)
    return subscription


async def list_subscriptions(
    session: AsyncSession, principal: Principal
) -> list[WebhookSubscription]:
    principal.require(Role.ADMIN)
    rows = await session.execute(
        select(WebhookSubscription)
        .where(WebhookSubscription.workspace_id == principal.workspace_id)
        .order_by(WebhookSubscription.id)
    )
    return list(rows.scalars())


async def get_subscription(
    session: AsyncSession, principal: Principal, subscription_id: int, *, for_update: bool = False
) -> WebhookSubscription:
    principal.require(Role.ADMIN)
    return await get_in_workspace(session, WebhookSubscription, principal.workspace_id,
                                  subscription_id, what="Webhook", for_update=for_update)


async def update_subscription(
    session: AsyncSession, principal: Principal, subscription_id: int, patch: WebhookUpdate,
    *, allow_private: bool,
) -> WebhookSubscription:
    subscription = await get_subscription(session, principal, subscription_id, for_update=True)
    fields = patch.model_dump(exclude_unset=True)
    for name, value in fields.items():
        if value is None:
            raise InvalidInput(f"{name} can't be null; leave it out to keep it",
                               details=[{"field": name, "message": "must not be null"}])
    if "url" in fields:
        fields["url"] = fields["url"].strip()
        await check_url(fields["url"], allow_private)
    changes = {name: [getattr(subscription, name), value] for name, value in fields.items()
               if getattr(subscription, name) != value}
    if not changes:
        return subscription
    for name, value in fields.items():
        setattr(subscription, name, value)
    if "active" in changes:
        if subscription.active:
            subscription.disabled_reason = None
        else:
            await _cancel_pending(session, subscription.id, "the webhook was deactivated")
    _log(session, principal.workspace_id, principal.user_id, "webhook.updated", subscription.id,
         changes)
    _event(session, EventType.WEBHOOK_UPDATED, subscription, principal.user_id, changes)
    return subscription


async def delete_subscription(
    session: AsyncSession, principal: Principal, subscription_id: int
) -> None:
    subscription = await get_subscription(session, principal, subscription_id, for_update=True)
    _log(session, principal.workspace_id, principal.user_id, "webhook.deleted", subscription.id,
         {"url": subscription.url, "events": subscription.events})
    _event(session, EventType.WEBHOOK_DELETED, subscription, principal.user_id)
    await session.delete(subscription)  # its delivery log goes with it (ON DELETE CASCADE)
    await session.flush()


async def deactivate_subscription(
    session: AsyncSession, subscription_id: int, reason: str
) -> None:
    """Frontdesk itself switches a webhook off (the receiver said 410 Gone)."""
    subscription = await session.get(WebhookSubscription, subscription_id, with_for_update=True)
    if subscription is None or not subscription.active:
        return
    subscription.active = False
    subscription.disabled_reason = reason
    await _cancel_pending(session, subscription_id, reason)
    _log(session, subscription.workspace_id, None, "webhook.deactivated", subscription_id,
         {"active": [True, False], "reason": reason})
    _event(session, EventType.WEBHOOK_UPDATED, subscription, None,
           {"active": [True, False], "disabled_reason": [None, reason]})


async def _cancel_pending(session: AsyncSession, subscription_id: int, reason: str) -> None:
    # An inactive webhook sends nothing, so what was waiting to go out has failed.
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id,
               WebhookDelivery.status == DeliveryStatus.PENDING.value)
        .values(status=DeliveryStatus.FAILED.value, next_attempt_at=None, last_error=reason)
        .execution_options(synchronize_session=False)
    )


async def list_deliveries(
    session: AsyncSession, principal: Principal, subscription_id: int, *,
    status: DeliveryStatus | None, cursor: str | None, limit: int,
) -> tuple[list[WebhookDelivery], str | None]:
    """The delivery log, newest first."""
    await get_subscription(session, principal, subscription_id)
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.workspace_id == principal.workspace_id,
               WebhookDelivery.subscription_id == subscription_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status.value)
    if cursor:
        stmt = stmt.where(WebhookDelivery.id < decode_id_cursor(cursor))
    rows = list((await session.execute(stmt)).scalars())
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def get_delivery(
    session: AsyncSession, principal: Principal, subscription_id: int, delivery_id: int,
    *, for_update: bool = False,
) -> WebhookDelivery:
    await get_subscription(session, principal, subscription_id)
    if not is_storable_id(delivery_id):  # no row has it, and the database would raise on it
        raise NotFound(f"Delivery {delivery_id} of webhook {subscription_id} was not found")
    stmt = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id,
        WebhookDelivery.workspace_id == principal.workspace_id,
        WebhookDelivery.subscription_id == subscription_id,
    )
    if for_update:
        stmt = stmt.with_for_update()
    delivery = (await session.execute(stmt)).scalar_one_or_none()
    if delivery is None:
        raise NotFound(f"Delivery {delivery_id} of webhook {subscription_id} was not found")
    return delivery


async def retry_delivery(
    session: AsyncSession, principal: Principal, subscription_id: int, delivery_id: int
) -> WebhookDelivery:
    """Send this delivery again now, whatever became of it: one more attempt, then the
    usual schedule if attempts are left (a failed one that fails again stays failed)."""
    subscription = await get_subscription(session, principal, subscription_id)
    if not subscription.active:
        raise Conflict("This webhook is inactive; activate it before retrying deliveries",
                       code="webhook_inactive")
    delivery = await get_delivery(session, principal, subscription_id, delivery_id,
                                  for_update=True)
    delivery.status = DeliveryStatus.PENDING.value
    delivery.next_attempt_at = utcnow()
    _log(session, principal.workspace_id, principal.user_id, "webhook.delivery_retried",
         subscription_id, {"delivery_id": delivery.id, "event_id": delivery.event_id})
    return delivery
