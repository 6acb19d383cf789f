"""Webhook routes: admins only, scoped to the caller's workspace (other ids answer 404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from frontdesk.accounts.auth import AdminPrincipal
from frontdesk.core.deps import DbSession, RuntimeDep
from frontdesk.core.ids import PathId
from frontdesk.webhooks import service
from frontdesk.webhooks.models import DeliveryStatus
from frontdesk.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)

router = APIRouter(tags=["webhooks"])


@router.post("/webhooks", response_model=WebhookCreated, status_code=201,
             responses={422: {"description": "invalid input, or an unsafe URL (code unsafe_url)"}})
async def create_webhook(
    body: WebhookCreate, db: DbSession, principal: AdminPrincipal, runtime: RuntimeDep
) -> WebhookCreated:
    """Subscribe a URL to events. The answer carries the signing `secret`, shown only now."""
    subscription = await service.create_subscription(
        db, principal, body, allow_private=runtime.settings.webhooks_allow_private
    )
    return WebhookCreated.model_validate(subscription)


@router.get("/webhooks", response_model=list[WebhookOut])
async def list_webhooks(db: DbSession, principal: AdminPrincipal) -> list[WebhookOut]:
    return [WebhookOut.model_validate(s) for s in await service.list_subscriptions(db, principal)]


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: PathId, db: DbSession, principal: AdminPrincipal) -> WebhookOut:
    return WebhookOut.model_validate(await service.get_subscription(db, principal, webhook_id))


@router.patch("/webhooks/{webhook_id}", response_model=WebhookOut)
async def update_webhook(
    webhook_id: PathId, body: WebhookUpdate, db: DbSession, principal: AdminPrincipal,
    runtime: RuntimeDep,
) -> WebhookOut:
    subscription = await service.update_subscription(
        db, principal, webhook_id, body, allow_private=runtime.settings.webhooks_allow_private
    )
    return WebhookOut.model_validate(subscription)


@router.delete("/webhooks/{webhook_id}", status_code=204, response_class=Response)
async def delete_webhook(webhook_id: PathId, db: DbSession, principal: AdminPrincipal) -> Response:
    await service.delete_subscription(db, principal, webhook_id)
    return Response(status_code=204)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    webhook_id: PathId, db: DbSession, principal: AdminPrincipal,
    status: DeliveryStatus | None = None, cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryPage:
    """The delivery log, newest first, with every attempt's status code or error."""
    rows, next_cursor = await service.list_deliveries(db, principal, webhook_id, status=status,
                                                      cursor=cursor, limit=limit)
    return DeliveryPage(items=[DeliveryOut.model_validate(d) for d in rows],
                        next_cursor=next_cursor)


@router.get("/webhooks/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryOut)
async def get_delivery(
    webhook_id: PathId, delivery_id: PathId, db: DbSession, principal: AdminPrincipal
) -> DeliveryOut:
    return DeliveryOut.model_validate(
        await service.get_delivery(db, principal, webhook_id, delivery_id)
    )


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", response_model=DeliveryOut,
             status_code=202)
async def retry_delivery(
    webhook_id: PathId, delivery_id: PathId, db: DbSession, principal: AdminPrincipal,
    runtime: RuntimeDep,
) -> DeliveryOut:
    """Send this delivery again now (it is queued; watch the delivery log)."""
    delivery = await service.retry_delivery(db, principal, webhook_id, delivery_id)
    runtime.webhook_sender.wake_after_commit(db)
    return DeliveryOut.model_validate(delivery)
