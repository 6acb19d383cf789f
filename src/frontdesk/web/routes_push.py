"""The installable app (manifest, service worker) and the agent's notification settings:
push subscriptions of this browser, sound and notification preferences."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from frontdesk.core.deps import DbSession, RuntimeDep
from frontdesk.core.inputs import InputModel
from frontdesk.notifications import service as notifications
from frontdesk.notifications.schemas import PushSubscriptionIn
from frontdesk.web import accounts
from frontdesk.web.i18n import N_
from frontdesk.web.pages import flash, redirect, web_router
from frontdesk.web.session import CurrentAgent
from frontdesk.web.templating import STATIC_DIR, static_url

router = web_router()


@router.get("/manifest.webmanifest")
async def web_app_manifest() -> Response:
    """What makes the workspace installable on a phone or desktop (a PWA)."""
    manifest: dict[str, Any] = {
        "name": "Frontdesk",
        "short_name": "Frontdesk",
        "description": "Customer service inbox",
        "id": "/app/",
        "start_url": "/app/inbox",
        "scope": "/app/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#4338ca",
        "icons": [
            {"src": static_url("icon-192.png"), "sizes": "192x192", "type": "image/png"},
            {"src": static_url("icon-512.png"), "sizes": "512x512", "type": "image/png"},
            {"src": static_url("icon-512.png"), "sizes": "512x512", "type": "image/png",
             "purpose": "maskable"},
            {"src": static_url("favicon.svg"), "sizes": "any", "type": "image/svg+xml"},
        ],
    }
    return JSONResponse(manifest, media_type="application/manifest+json",
                        headers={"Cache-Control": "no-cache"})


@router.get("/sw.js")
async def service_worker() -> Response:
    """The service worker, served from /app/ so that its scope is the whole workspace."""
    return Response((STATIC_DIR / "sw.js").read_bytes(), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/app/"})


@router.post("/push/subscriptions")
async def subscribe_this_browser(
    body: PushSubscriptionIn, db: DbSession, agent: CurrentAgent, runtime: RuntimeDep
) -> Response:
    subscription = await notifications.subscribe(
        db, agent.principal, body, allow_private=runtime.settings.push_allow_private)
    return JSONResponse({"id": subscription.id}, status_code=201)


class _Endpoint(InputModel):
    endpoint: str = Field(min_length=10, max_length=2048)


@router.post("/push/unsubscribe")
async def unsubscribe_this_browser(body: _Endpoint, db: DbSession, agent: CurrentAgent) -> Response:
    await notifications.unsubscribe_endpoint(db, agent.principal, body.endpoint)
    return Response(status_code=204)


@router.post("/settings/notifications")
async def save_notification_preferences(
    request: Request, db: DbSession, agent: CurrentAgent,
    notify_assignments: Annotated[bool, Form()] = False,
    notify_sound: Annotated[bool, Form()] = False,
) -> Response:
    await accounts.set_notification_preferences(db, agent.user, assignments=notify_assignments,
                                                sound=notify_sound)
    flash(request, N_("Your notification settings are saved."))
    return redirect(request, "/app/settings")
