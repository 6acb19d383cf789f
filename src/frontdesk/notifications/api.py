"""Push subscription routes: each agent manages their own browsers (any role)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from frontdesk.accounts.auth import CurrentPrincipal
from frontdesk.core.deps import DbSession, RuntimeDep
from frontdesk.core.ids import PathId
from frontdesk.notifications import service
from frontdesk.notifications.schemas import (
    PushPublicKey,
    PushSubscriptionIn,
    PushSubscriptionOut,
)
from frontdesk.notifications.webpush import application_server_key
from frontdesk.web.security import load_secret_key

router = APIRouter(tags=["notifications"])


@router.get("/push/public-key", response_model=PushPublicKey)
async def get_push_public_key(principal: CurrentPrincipal, runtime: RuntimeDep) -> PushPublicKey:
    """The `applicationServerKey` a browser subscribes with (VAPID, RFC 8292)."""
    return PushPublicKey(public_key=application_server_key(load_secret_key(runtime.settings)))


@router.get("/push/subscriptions", response_model=list[PushSubscriptionOut])
async def list_push_subscriptions(
    db: DbSession, principal: CurrentPrincipal
) -> list[PushSubscriptionOut]:
    """The caller's own browsers that receive notifications of new assignments."""
    return [PushSubscriptionOut.model_validate(s)
            for s in await service.list_my_subscriptions(db, principal)]


@router.post("/push/subscriptions", response_model=PushSubscriptionOut, status_code=201,
             responses={422: {"description": "invalid input, or an unsafe endpoint URL"}})
async def create_push_subscription(
    body: PushSubscriptionIn, db: DbSession, principal: CurrentPrincipal, runtime: RuntimeDep
) -> PushSubscriptionOut:
    """Register a browser's PushSubscription (its `toJSON()`): new assignments of the
    caller are pushed to it."""
    subscription = await service.subscribe(
        db, principal, body, allow_private=runtime.settings.push_allow_private)
    return PushSubscriptionOut.model_validate(subscription)


@router.delete("/push/subscriptions/{subscription_id}", status_code=204,
               response_class=Response)
async def delete_push_subscription(
    subscription_id: PathId, db: DbSession, principal: CurrentPrincipal
) -> Response:
    await service.unsubscribe(db, principal, subscription_id)
    return Response(status_code=204)
