"""The ASGI application: the REST API under /api/v1, its OpenAPI document, the real-time
WebSocket, and (in `serve`) the embedded dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse

from frontdesk import __version__
from frontdesk.accounts.api import router as accounts_router
from frontdesk.canned.api import router as canned_router
from frontdesk.channels.api import router as inboxes_router
from frontdesk.channels.api_channel.api import router as api_channel_router
from frontdesk.channels.email.api import router as email_router
from frontdesk.channels.email.imap_api import router as imap_router
from frontdesk.channels.email.smtp_server import (
    SmtpTlsSettingsError,
    smtp_tls_context,
    start_smtp_server,
)
from frontdesk.config import Settings, get_settings
from frontdesk.contacts.api import router as contacts_router
from frontdesk.conversations.api import router as conversations_router
from frontdesk.conversations.tags_api import router as tags_router
from frontdesk.conversations.tools_api import router as conversation_tools_router
from frontdesk.core.errors import ERROR_RESPONSES, RejectUnstorableUrls, install_error_handlers
from frontdesk.core.events_api import router as events_router
from frontdesk.core.realtime_api import router as realtime_router
from frontdesk.inbox_views.api import router as views_router
from frontdesk.notifications.api import router as notifications_router
from frontdesk.runtime import Runtime
from frontdesk.web import install_web
from frontdesk.webhooks.api import router as webhooks_router

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    try:
        smtp_tls = smtp_tls_context(settings) if settings.smtp_port else None
    except SmtpTlsSettingsError as exc:
        # Before anything starts, and in one sentence: inside the lifespan it would reach
        # the operator as a traceback.
        raise SystemExit(f"Error: {exc}") from None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        app.state.runtime = runtime
        await runtime.start(run_dispatcher=settings.embedded_worker)
        smtp = await start_smtp_server(runtime, smtp_tls)
        try:
            yield
        finally:
            if smtp is not None:
                await smtp.stop()
            await runtime.stop()

    app = FastAPI(
        title="Frontdesk API",
        version=__version__,
        description="Omnichannel customer service. Errors are JSON: "
        '{"error": {"code": ..., "message": ..., "details"?: ...}}.',
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    install_error_handlers(app)
    app.add_middleware(RejectUnstorableUrls)

    api = APIRouter(prefix=API_PREFIX)
    for router in (inboxes_router, api_channel_router, conversations_router, contacts_router,
                   accounts_router, webhooks_router, email_router):
        api.include_router(router)
    api.include_router(views_router)
    api.include_router(conversation_tools_router)
    api.include_router(notifications_router)
    api.include_router(canned_router)
    api.include_router(imap_router)
    api.include_router(tags_router)
    api.include_router(events_router)
    app.include_router(api)
    app.include_router(realtime_router)
    install_web(app, settings)  # the agent workspace under /app (pages, static, session)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/app/")
    return app
