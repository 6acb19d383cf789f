"""Push subscriptions: an agent's browsers that want to hear about new assignments."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.service import Principal
from frontdesk.core.errors import NotFound
from frontdesk.core.netguard import check_url
from frontdesk.db.base import utcnow
from frontdesk.notifications.models import PushSubscription
from frontdesk.notifications.schemas import PushSubscriptionIn


async def subscribe(
    db: AsyncSession, principal: Principal, body: PushSubscriptionIn, *, allow_private: bool
) -> PushSubscription:
    """Remember this browser for the acting agent. The same browser subscribing again (a
    new key, or another agent signing in on a shared computer) updates the one row: a
    browser's notifications go to whoever used it last, never to two people."""
    await check_url(body.endpoint, allow_private)  # UnsafeURL: 422 with the reason
    existing = (await db.execute(
        select(PushSubscription).where(PushSubscription.workspace_id == principal.workspace_id,
                                       PushSubscription.endpoint == body.endpoint)
        .with_for_update()
    )).scalar_one_or_none()
    subscription = existing or PushSubscription(workspace_id=principal.workspace_id,
                                                endpoint=body.endpoint)
    subscription.user_id = principal.user_id
    subscription.p256dh = body.keys.p256dh
    subscription.auth = body.keys.auth
    subscription.user_agent = body.user_agent
    subscription.failures = 0
    subscription.last_error = None
    if existing is None:
        subscription.created_at = utcnow()
        db.add(subscription)
    await db.flush()
    return subscription


async def list_my_subscriptions(db: AsyncSession, principal: Principal) -> list[PushSubscription]:
    return list((await db.execute(
        select(PushSubscription).where(PushSubscription.workspace_id == principal.workspace_id,
                                       PushSubscription.user_id == principal.user_id)
        .order_by(PushSubscription.id)
    )).scalars())


async def unsubscribe(db: AsyncSession, principal: Principal, subscription_id: int) -> None:
    """Only one's own browsers: another agent's subscription is as unknown as a missing one."""
    subscription = (await db.execute(
        select(PushSubscription).where(PushSubscription.id == subscription_id,
                                       PushSubscription.workspace_id == principal.workspace_id,
                                       PushSubscription.user_id == principal.user_id)
    )).scalar_one_or_none()
    if subscription is None:
        raise NotFound(f"push subscription {subscription_id} was not found")
    await db.delete(subscription)


async def unsubscribe_endpoint(db: AsyncSession, principal: Principal, endpoint: str) -> bool:
    """The browser itself unsubscribing (it knows its endpoint, not our id)."""
    subscription = (await db.execute(
        select(PushSubscription).where(PushSubscription.workspace_id == principal.workspace_id,
                                       PushSubscription.user_id == principal.user_id,
                                       PushSubscription.endpoint == endpoint)
    )).scalar_one_or_none()
    if subscription is None:
        return False
    await db.delete(subscription)
    return True
