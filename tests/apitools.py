"""Tools for tests that must hold for every route of the REST API (tenancy, authentication,
error handling, mass assignment): the routes come from the app itself, so a route added
tomorrow is covered tomorrow, and a path parameter nobody taught these tools to fill makes
those tests fail with a message saying so."""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import Table, select

from frontdesk.accounts.models import Membership, Role, User
from frontdesk.app import API_PREFIX, create_app
from frontdesk.channels.email.service import receive_email
from frontdesk.config import Settings
from frontdesk.core.events import OutboxEvent
from frontdesk.db.base import Base, utcnow
from frontdesk.runtime import Runtime
from tests.channels.email.mailmaker import make_mail
from tests.factories import Factory, Member, Workspace, unique

HOOK_URL = "http://127.0.0.1:9/hook"  # nothing listens there: deliveries fail and are logged

# --- the routes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as mounted: /api/v1/conversations/{conversation_id}
    endpoint: APIRoute

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)(?::\w+)?}", self.path)

    @property
    def body_model(self) -> type[BaseModel] | None:
        body = self.endpoint.body_field
        annotation = body.field_info.annotation if body is not None else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation
        return None

    @property
    def query_params(self) -> list[str]:
        return [p.name for p in self.endpoint.dependant.query_params]

    def url(self, **values: Any) -> str:
        return self.path.format(**values)


def _walk(routes: list[Any]) -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.path, route
        elif hasattr(route, "effective_route_contexts"):  # FastAPI's included routers
            for context in route.effective_route_contexts():
                if isinstance(context.original_route, APIRoute):
                    yield context.path, context.original_route
        elif hasattr(route, "routes"):  # a mounted sub-application
            yield from _walk(route.routes)


def api_routes(app: FastAPI | None = None) -> list[Route]:
    """Every HTTP route under /api/v1, one per method."""
    if app is None:
        with tempfile.TemporaryDirectory() as scratch:  # the app may keep files in data_dir
            return api_routes(create_app(Settings(data_dir=Path(scratch))))
    found = []
    for path, endpoint in _walk(list(app.routes)):
        if path.startswith(API_PREFIX + "/"):
            for method in sorted(endpoint.methods or ()):
                if method not in ("HEAD", "OPTIONS"):
                    found.append(Route(method, path, endpoint))
    return found


ROUTES = api_routes()


# --- a workspace's objects, made on first use ---------------------------------------------

Maker = Callable[["Objects"], Awaitable[Any]]


async def _inbox(o: Objects) -> int:
    r = await o.api.post("/api/v1/inboxes", headers=o.headers,
                         json={"name": f"{o.marker} {unique('inbox')}", "channel": "api"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _push(o: Objects, identifier: str | None = None) -> dict[str, Any]:
    r = await o.api.post(
        f"/api/v1/inboxes/{await o.get('inbox_id')}/incoming", headers=o.headers,
        json={"external_id": unique("ext"), "subject": f"{o.marker} subject",
              "content": f"{o.marker} needs help",
              "contact": {"identifier": identifier or unique("cust"),
                          "name": f"{o.marker} customer"}})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _conversation(o: Objects) -> int:
    ids = await _push(o)
    o.made.setdefault("contact_id", ids["contact_id"])
    return int(ids["conversation_id"])


async def _contact(o: Objects) -> int:
    await o.get("conversation_id")
    return int(o.made["contact_id"])


async def _identity(o: Objects) -> int:
    """An identity of contact_id (the one intake attached from the pushed identifier)."""
    r = await o.api.get(f"/api/v1/contacts/{await o.get('contact_id')}", headers=o.headers)
    assert r.status_code == 200, r.text
    return int(r.json()["identities"][0]["id"])


async def _view(o: Objects) -> int:
    r = await o.api.post("/api/v1/views", headers=o.headers,
                         json={"name": f"{o.marker} {unique('view')}", "shared": True,
                               "filters": {"q": o.marker}})
    assert r.status_code == 201, f"POST /api/v1/views: {r.status_code} {r.text}"
    return int(r.json()["id"])


async def _selection(o: Objects) -> int:
    """The conversation a bulk request's `ids` name (POST /conversations/bulk)."""
    return int(await o.get("conversation_id"))


async def _same_contacts_conversation(o: Objects) -> int:
    """Another conversation of contact_id (through a second inbox), for a merge."""
    r = await o.api.get(f"/api/v1/contacts/{await o.get('contact_id')}", headers=o.headers)
    assert r.status_code == 200, r.text
    identifier = r.json()["identities"][0]["value"]
    r = await o.api.post(
        f"/api/v1/inboxes/{await _inbox(o)}/incoming", headers=o.headers,
        json={"external_id": unique("ext"), "content": f"{o.marker} again",
              "contact": {"identifier": identifier}})
    assert r.status_code == 201, r.text
    return int(r.json()["conversation_id"])


async def _message(o: Objects) -> int:
    """The customer's second message in conversation_id: one a move can take (the first
    stays, so the conversation is not emptied)."""
    r = await o.api.get(f"/api/v1/contacts/{await o.get('contact_id')}", headers=o.headers)
    assert r.status_code == 200, r.text
    r = await o.api.post(
        f"/api/v1/inboxes/{await o.get('inbox_id')}/incoming", headers=o.headers,
        json={"external_id": unique("ext"), "content": f"{o.marker} more",
              "contact": {"identifier": r.json()["identities"][0]["value"]}})
    assert r.status_code == 201, r.text
    assert r.json()["conversation_id"] == await o.get("conversation_id"), r.text
    return int(r.json()["message_id"])


async def _scheduled_message(o: Objects) -> int:
    r = await o.api.post(
        f"/api/v1/conversations/{await o.get('conversation_id')}/scheduled-messages",
        headers=o.headers, json=_scheduled_body(o))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _scheduled_body(o: Objects) -> dict[str, Any]:
    send_at = datetime.now(UTC) + timedelta(days=1)
    return {"content": f"{o.marker} later", "send_at": send_at.isoformat()}


async def _canned_response(o: Objects) -> int:
    r = await o.api.post("/api/v1/canned-responses", headers=o.headers,
                         json={"shortcut": unique("canned"), "content": f"{o.marker} canned"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _email_inbox(o: Objects) -> int:
    """An e-mail inbox with an IMAP mailbox set up (disabled: no poller connects)."""
    inbox_id, _address = await o.factory.email_inbox(o.workspace)
    r = await o.api.put(f"/api/v1/inboxes/{inbox_id}/imap", headers=o.headers,
                        json=_imap_body(o))
    assert r.status_code == 200, f"PUT .../imap: {r.status_code} {r.text}"
    return inbox_id


def _imap_body(o: Objects) -> dict[str, Any]:
    # A public address literal: accepted whatever FRONTDESK_IMAP_ALLOW_PRIVATE says, and
    # resolved without DNS. Disabled: nothing ever connects to it.
    return {"host": "1.1.1.1", "port": 9, "tls": "tls", "username": f"{o.marker}@imap.test",
            "password": "imap-secret", "mailbox": "INBOX", "enabled": False}


async def _received_mail(o: Objects, raw: bytes) -> Any:
    inbox_id = await o.get("email_inbox_id")
    r = await o.api.get(f"/api/v1/inboxes/{inbox_id}", headers=o.headers)
    address = r.json()["settings"]["email"]
    return await receive_email(o.factory.runtime, raw, inbox_id=inbox_id,
                               envelope_recipients=[address], source="test")


async def _email_message(o: Objects) -> int:
    """A mail received into the e-mail inbox, with one attachment (number 1)."""
    raw = make_mail(sender=f"{unique('sender')}@customer.example", to="support@example.com",
                    subject=f"{o.marker} mail", body=f"{o.marker} needs help",
                    attachments=[(f"{o.marker}.txt", "text/plain", b"attached")])
    received = await _received_mail(o, raw)
    assert received.status == "stored", received
    return int(received.message_id)


async def _attachment_number(o: Objects) -> int:
    await o.get("email_message_id")
    return 1


async def _quarantined(o: Objects) -> int:
    """A mail that could not be read, kept in quarantine."""
    received = await _received_mail(o, b"\r\n\r\n")
    assert received.status == "quarantined", received
    return int(received.quarantine_id)


async def _contact_note(o: Objects) -> int:
    r = await o.api.post(f"/api/v1/contacts/{await o.get('contact_id')}/notes",
                         headers=o.headers, json={"body": f"{o.marker} prefers calls"})
    assert r.status_code == 201, f"POST .../notes: {r.status_code} {r.text}"
    return int(r.json()["id"])


async def _second_contact(o: Objects) -> int:
    return int((await _push(o))["contact_id"])


async def _agent(o: Objects) -> int:
    return (await o.member(Role.AGENT)).user_id


async def _former_member(o: Objects) -> int:
    """Someone deactivated in the workspace (whom an admin may reactivate)."""
    member = await o.factory.api_member(o.workspace, Role.AGENT)
    r = await o.api.delete(f"/api/v1/users/{member.user_id}", headers=o.headers)
    assert r.status_code == 204, f"DELETE /api/v1/users/{{id}}: {r.status_code} {r.text}"
    o.workspace.members.remove(member)
    return member.user_id


async def _team(o: Objects) -> int:
    return await o.factory.team(o.workspace, name=f"{o.marker} {unique('team')}")


async def _company(o: Objects) -> int:
    return await o.factory.company(o.workspace, name=f"{o.marker} {unique('company')}")


async def _token(o: Objects) -> int:
    token_id, _ = await o.factory.token(o.workspace.admin, name=f"{o.marker} {unique('token')}")
    return token_id


async def _tag(o: Objects) -> str:
    name = f"{o.marker}-{unique('tag')}"
    await o.factory.tag(o.workspace, await o.get("conversation_id"), name)
    return name


async def _webhook(o: Objects) -> int:
    r = await o.api.post("/api/v1/webhooks", headers=o.headers,
                         json={"url": HOOK_URL, "events": ["*"],
                               "description": f"{o.marker} hook"})
    assert r.status_code == 201, f"POST /api/v1/webhooks: {r.status_code} {r.text}"
    return int(r.json()["id"])


async def _delivery(o: Objects) -> int:
    """A delivery of the workspace's webhook: push a message, wait for the dispatcher to
    log its delivery (which fails: nothing listens on HOOK_URL)."""
    webhook_id = await o.get("webhook_id")
    await _push(o)
    for _ in range(200):
        r = await o.api.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=o.headers)
        assert r.status_code == 200, f"GET .../deliveries: {r.status_code} {r.text}"
        body = r.json()
        items = body["items"] if isinstance(body, dict) else body
        if items:
            return int(items[0]["id"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no delivery of webhook {webhook_id} appeared within 10 s")


async def _failed_event(o: Objects) -> int:
    """A dead-lettered event of the workspace: what the dispatcher leaves after its listeners
    failed on an event as often as it tries (the shared app's dispatcher never claims it)."""
    async with o.factory.runtime.sessions() as session, session.begin():
        event = OutboxEvent(workspace_id=o.workspace.id, type="contact.updated",
                            payload={"marker": o.marker}, attempts=10,
                            last_error=f"{o.marker} listener failed", failed_at=utcnow())
        session.add(event)
        await session.flush()
        return event.id


def _push_body(o: Objects) -> dict[str, Any]:
    """A browser's PushSubscription.toJSON(), its endpoint unique to the call."""
    return {"endpoint": f"{HOOK_URL}/push/{unique('browser')}",
            "keys": {"p256dh": _BROWSER_KEY, "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}


# A browser's P-256 public key (RFC 8291 test vector), base64url.
_BROWSER_KEY = ("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZ"
                "GH6SRpkNtoIAiw4")


async def _push_subscription(o: Objects) -> int:
    r = await o.api.post("/api/v1/push/subscriptions", headers=o.headers, json=_push_body(o))
    assert r.status_code == 201, f"POST /api/v1/push/subscriptions: {r.status_code} {r.text}"
    return int(r.json()["id"])


# How to get an object of a workspace for each path parameter (and id field of a body).
# A route with a path parameter missing here fails the tenancy test: teach it here.
MAKERS: dict[str, Maker] = {
    "inbox_id": _inbox,
    "email_inbox_id": _email_inbox,  # PUT/GET /inboxes/{email_inbox_id}/imap
    "conversation_id": _conversation,
    "contact_id": _contact,
    "merge_id": _second_contact,  # another contact, to merge into contact_id
    "other_id": _same_contacts_conversation,  # merged into conversation_id
    "message_id": _message,  # a second message of conversation_id
    "scheduled_message_id": _scheduled_message,
    "canned_response_id": _canned_response,
    "identity_id": _identity,
    "note_id": _contact_note,  # a note about contact_id
    "user_id": _agent,  # a member who is not the caller: role changes are harmless
    "assignee_id": _agent,
    "former_user_id": _former_member,  # POST /users/{former_user_id}/reactivate
    "team_id": _team,
    "company_id": _company,
    "token_id": _token,  # not the token the tests call with: revoking it is harmless
    "tag": _tag,
    "view_id": _view,
    "ids": _selection,
    "webhook_id": _webhook,
    "delivery_id": _delivery,
    "email_message_id": _email_message,  # GET /messages/{email_message_id}/email...
    "attachment_number": _attachment_number,
    "quarantine_id": _quarantined,
    "subscription_id": _push_subscription,  # the caller's own browser
    "event_id": _failed_event,  # POST /events/{event_id}/retry
}


@dataclass
class Objects:
    """One workspace and one object of each kind a route may name, made on first use.
    Every name and text contains `marker` (the workspace's unique name), so a response
    that leaks any of them to another workspace is easy to spot."""

    factory: Factory
    workspace: Workspace
    made: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def create(cls, factory: Factory) -> Objects:
        return cls(factory, await factory.api_workspace())

    @property
    def api(self) -> httpx.AsyncClient:
        return self.factory.api

    @property
    def marker(self) -> str:
        return self.workspace.name

    @property
    def headers(self) -> dict[str, str]:
        return self.workspace.admin.headers

    async def get(self, kind: str) -> Any:
        if kind not in self.made:
            if kind not in MAKERS:
                raise KeyError(kind)
            self.made[kind] = await MAKERS[kind](self)
        return self.made[kind]

    async def member(self, role: Role) -> Member:
        for member in self.workspace.members:
            if member.role is role and member is not self.workspace.admin:
                return member
        return await self.factory.api_member(self.workspace, role)

    async def everything(self) -> Objects:
        for kind in MAKERS:
            if kind in ("webhook_id", "delivery_id") and not has_webhooks():
                continue
            await self.get(kind)
        return self

    async def path(self, route: Route) -> str:
        return route.url(**{p: await self.get(p) for p in route.path_params})


def has_webhooks() -> bool:
    return any(r.path == f"{API_PREFIX}/webhooks" and r.method == "POST" for r in ROUTES)


def unknown_path_params(route: Route) -> list[str]:
    return [p for p in route.path_params if p not in MAKERS]


# --- request bodies -----------------------------------------------------------------------

# Bodies that a schema alone cannot produce (a model-level rule, a unique name...).
EXAMPLES: dict[str, Callable[[Objects], dict[str, Any]]] = {
    "IncomingMessage": lambda o: {"external_id": unique("ext"), "content": "Hello",
                                  "contact": {"identifier": unique("cust")}},
    "UserInvite": lambda o: {"email": f"{unique('invited')}@example.com"},
    "WebhookCreate": lambda o: {"url": HOOK_URL, "events": ["*"]},
    "ImapSettingsIn": _imap_body,
    "ScheduledMessageIn": _scheduled_body,
    "PushSubscriptionIn": _push_body,
}


async def minimal_body(route: Route, caller: Objects) -> dict[str, Any] | None:
    """The smallest valid body of the route, as `caller` would send it: ids in it name
    the caller's own objects, names are unique."""
    model = route.body_model
    if model is None:
        return None
    if model.__name__ in EXAMPLES:
        return EXAMPLES[model.__name__](caller)
    schema = model.model_json_schema()
    return await _value(schema, schema, caller, name="")  # type: ignore[no-any-return]


async def _value(node: dict[str, Any], root: dict[str, Any], caller: Objects, name: str) -> Any:
    if "$ref" in node:
        return await _value(root["$defs"][node["$ref"].rsplit("/", 1)[1]], root, caller, name)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        return await _value(options[0], root, caller, name)
    if name in MAKERS and node.get("type") in ("integer", None):
        return await caller.get(name)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object":
        required = node.get("required", [])
        props = node.get("properties", {})
        return {key: await _value(props[key], root, caller, key) for key in required}
    if kind == "array":
        count = node.get("minItems", 0)
        return [await _value(node.get("items", {}), root, caller, name) for _ in range(count)]
    if kind == "string":
        if node.get("format") in ("uri", "url") or name == "url":
            return HOOK_URL
        if node.get("format") == "email" or name == "email":
            return f"{unique('x')}@example.com"
        if name == "events":
            return "*"
        text = f"{caller.marker}-{unique(name or 'x')}"
        return text[: node.get("maxLength", len(text))]
    if kind == "integer":
        return max(1, node.get("minimum", 1))
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    return None


# --- checks -------------------------------------------------------------------------------


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """`response` is the JSON error {"error": {"code", "message", "details"?}} with `status`."""
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == status, (
        f"{where}: expected {status}, got {response.status_code}: {response.text[:500]}")
    assert response.headers.get("content-type", "").startswith("application/json"), where
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, f"{where}: {body}"
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], f"{where}: {body}"
    assert isinstance(error.get("message"), str) and error["message"], f"{where}: {body}"
    if code is not None:
        assert error["code"] == code, f"{where}: expected code {code}: {body}"
    return dict(error)


def error_fields(response: httpx.Response) -> list[str]:
    """The fields a 422 names in its details."""
    details = assert_error(response, 422).get("details") or []
    assert all({"field", "message"} <= set(d) for d in details), details
    return [str(d["field"]) for d in details]


# Columns that change without a request (the dispatcher, token use) and tables the
# dispatcher writes to on its own schedule.
_VOLATILE_COLUMNS = {"dispatched_at", "attempts", "available_at", "last_error", "last_used_at"}


def _volatile_table(table: Table) -> bool:
    return table.name == "events" or "deliver" in table.name or "attempt" in table.name


Snapshot = dict[str, list[tuple[Any, ...]]]


async def workspace_snapshot(runtime: Runtime, workspace_id: int) -> Snapshot:
    """Every stored row of the workspace (and its members' user rows), for proving that a
    refused request wrote nothing."""
    snapshot: Snapshot = {}
    async with runtime.read_sessions() as session:
        for table in Base.metadata.sorted_tables:
            if "workspace_id" not in table.c or _volatile_table(table):
                continue
            columns = [c for c in table.c if c.name not in _VOLATILE_COLUMNS]
            rows = await session.execute(
                select(*columns).where(table.c.workspace_id == workspace_id)
                .order_by(*table.primary_key.columns)
            )
            snapshot[table.name] = [tuple(r) for r in rows.all()]
        users = await session.execute(
            select(User.id, User.email, User.name, User.password_hash)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.workspace_id == workspace_id).order_by(User.id)
        )
        snapshot["users"] = [tuple(r) for r in users.all()]
    return snapshot
