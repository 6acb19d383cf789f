"""E-mail in the admin area: e-mail inboxes (their address, From name, signature and
acknowledgement), their IMAP mailbox, and the quarantine.

Admins only, like the REST API's routes for the same things (IMAP settings and the
quarantine are admin routes there; a supervisor gets the same 403 page as on the other
admin screens). Every change goes through the services the API uses."""

from __future__ import annotations

from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from typing import Annotated, Any

from fastapi import BackgroundTasks, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select

from frontdesk.channels import service as channels
from frontdesk.channels.email import imap_service
from frontdesk.channels.email import service as email
from frontdesk.channels.email.imap_schemas import ImapSettingsIn, ImapSettingsOut
from frontdesk.channels.email.models import QuarantinedEmail
from frontdesk.channels.models import ChannelType
from frontdesk.channels.schemas import InboxCreate, InboxUpdate
from frontdesk.config import Settings
from frontdesk.conversations.models import Message
from frontdesk.core.deps import DbSession, ReadSession, RuntimeDep
from frontdesk.core.errors import Forbidden, FrontdeskError, NotFound
from frontdesk.core.ids import PathId
from frontdesk.core.secrets import secret_box
from frontdesk.web.i18n import N_
from frontdesk.web.pages import base_context, flash, redirect, web_router
from frontdesk.web.roles import AdminAgent
from frontdesk.web.session import Agent
from frontdesk.web.templating import render

router = web_router()

NAME_LIMIT = 200
TEXT_LIMIT = 5000
QUARANTINE_PAGE = 100
# The quarantine's source view shows the start of the mail; the download has all of it.
SOURCE_PREVIEW_BYTES = 64 * 1024
# Whatever a file holds, the browser must not run it (as the API's downloads).
_FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
}

REFUSALS = {
    "email_address_taken": N_("Another inbox already receives mail for that address."),
    "invalid_email": N_("Enter a valid e-mail address, without '+'."),
    "unsafe_host": N_("That IMAP server is not allowed: its address is private or internal "
                      "(FRONTDESK_IMAP_ALLOW_PRIVATE=1 allows servers on your own network)."),
    "unresolvable_host": N_("That IMAP server's name does not resolve."),
    "already_reprocessed": N_("This mail was already re-processed."),
    "inbox_disabled": N_("This inbox is disabled; an admin can enable it again."),
    "primary_address_required": N_("The primary address cannot be removed: make another "
                                   "address primary first."),
}
GENERIC_REFUSAL = N_("That could not be saved. Check what you entered and try again.")
IMAP_FIELD_REFUSALS = {
    "host": N_("Enter the IMAP server's host name, without scheme, port or path."),
    "port": N_("The port is a number from 1 to 65535."),
    "move_to": N_("Moving needs a folder other than the mailbox."),
}
TLS_LABELS = {"tls": N_("TLS (usually port 993)"), "starttls": N_("STARTTLS (usually port 143)")}
AFTER_IMPORT_LABELS = {"seen": N_("Mark it as read"), "move": N_("Move it to a folder")}
REPROCESS_OUTCOMES = {
    "stored": N_("Re-processed: the mail is a message now."),
    "duplicate": N_("Re-processed: the mail was already stored as a message."),
    "quarantined": N_("Re-processed, but it still cannot be stored: the reason is below."),
}


def _refused(request: Request, exc: FrontdeskError, back: str) -> Response:
    """A refusal a person can act on comes back as a flash; a role refusal or an unknown
    id (another workspace's) stays the error page."""
    if isinstance(exc, Forbidden | NotFound):
        raise exc
    flash(request, REFUSALS.get(exc.code, GENERIC_REFUSAL), "error")
    return redirect(request, back)


def _page(request: Request, agent: Agent, template: str, section: str,
          **extra: Any) -> Response:
    return render(request, template, base_context(request, agent, section=section, **extra))


def smtp_endpoint(settings: Settings, request: Request) -> tuple[str, int] | None:
    """Where an MTA should forward the inboxes' mail: this installation's SMTP server
    (None when it runs none). A wildcard bind address names no host, so the host the
    admin reached this page by is shown instead."""
    if not settings.smtp_port:
        return None
    host = settings.smtp_host
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - recognising a wildcard, not binding
        host = request.url.hostname or host
    return host, settings.smtp_port


# --- e-mail inboxes ---------------------------------------------------------------------


@router.post("/admin/inboxes/email")
async def create_email_inbox(
    request: Request, db: DbSession, agent: AdminAgent,
    name: Annotated[str, Form(max_length=NAME_LIMIT)] = "",
    address: Annotated[str, Form(max_length=320)] = "",
    from_name: Annotated[str, Form(max_length=NAME_LIMIT)] = "",
    signature: Annotated[str, Form(max_length=TEXT_LIMIT)] = "",
    acknowledge: Annotated[str, Form(max_length=5)] = "",
    acknowledgement: Annotated[str, Form(max_length=TEXT_LIMIT)] = "",
) -> Response:
    back = "/app/admin/inboxes"
    if acknowledge == "1" and not acknowledgement.strip():
        flash(request, N_("Write the acknowledgement, or switch it off."), "error")
        return redirect(request, back)
    try:
        data = InboxCreate(name=name.strip(), channel="email", email=address.strip(),
                           from_name=from_name.strip() or None, signature=signature.strip(),
                           auto_acknowledgement=(acknowledgement.strip() or None)
                           if acknowledge == "1" else None)
    except ValidationError:
        flash(request, N_("Give the inbox a name and an address; the name, address and From "
                          "name must each be one line."), "error")
        return redirect(request, back)
    try:
        inbox = await channels.create_inbox(
            db, agent.principal, name=data.name, channel=data.channel, email=data.email,
            from_name=data.from_name, signature=data.signature,
            auto_acknowledgement=data.auto_acknowledgement)
    except FrontdeskError as exc:
        return _refused(request, exc, back)
    flash(request, N_("The e-mail inbox is created. Forward its mail here, or set up IMAP."))
    return redirect(request, f"/app/admin/inboxes/{inbox.id}")


async def _imap_state(db: DbSession, agent: Agent, inbox_id: int) -> ImapSettingsOut | None:
    try:
        return imap_service.imap_out(await imap_service.get_imap(db, agent.principal, inbox_id))
    except NotFound as exc:
        if exc.code == "imap_not_configured":
            return None
        raise


@router.get("/admin/inboxes/{inbox_id}")
async def email_inbox_page(
    inbox_id: PathId, request: Request, db: ReadSession, agent: AdminAgent,
    runtime: RuntimeDep,
) -> Response:
    inbox = await channels.get_inbox(db, agent.principal, inbox_id)
    if inbox.channel != ChannelType.EMAIL:
        # An API inbox has nothing more to set than its name, on the list.
        return redirect(request, f"/app/admin/inboxes#inbox-{inbox.id}")
    return _page(request, agent, "admin/email_inbox.html", "inboxes", inbox=inbox,
                 addresses=await channels.support_addresses(db, agent.principal, inbox.id),
                 smtp=smtp_endpoint(runtime.settings, request),
                 imap=await _imap_state(db, agent, inbox.id),
                 TLS_LABELS=TLS_LABELS, AFTER_IMPORT_LABELS=AFTER_IMPORT_LABELS)


@router.post("/admin/inboxes/{inbox_id}/email")
async def save_email_settings(
    inbox_id: PathId, request: Request, db: DbSession, agent: AdminAgent,
    address: Annotated[str, Form(max_length=320)] = "",
    from_name: Annotated[str, Form(max_length=NAME_LIMIT)] = "",
    signature: Annotated[str, Form(max_length=TEXT_LIMIT)] = "",
    acknowledge: Annotated[str, Form(max_length=5)] = "",
    acknowledgement: Annotated[str, Form(max_length=TEXT_LIMIT)] = "",
) -> Response:
    back = f"/app/admin/inboxes/{inbox_id}"
    try:
        patch = InboxUpdate(email=address.strip(), from_name=from_name.strip(),
                            signature=signature.strip(),
                            auto_acknowledgement=acknowledgement.strip()
                            if acknowledge == "1" else "")
    except ValidationError:
        flash(request, N_("Enter the address and the From name, each on one line."), "error")
        return redirect(request, back)
    if acknowledge == "1" and not patch.auto_acknowledgement:
        flash(request, N_("Write the acknowledgement, or switch it off."), "error")
        return redirect(request, back)
    try:
        await channels.update_inbox(db, agent.principal, inbox_id,
                                    email_settings=patch.email_settings())
    except FrontdeskError as exc:
        return _refused(request, exc, back)
    flash(request, N_("The e-mail settings are saved."))
    return redirect(request, back)


async def _change_addresses(request: Request, db: DbSession, agent: Agent, inbox_id: int,
                            address: str, change: str) -> Response:
    """Add, remove or make primary one of the inbox's addresses, through the service the
    API's PATCH uses (`addresses` is the whole list there; `email` the primary)."""
    back = f"/app/admin/inboxes/{inbox_id}"
    address = address.strip()
    if not address or any(c in address for c in "\r\n"):
        flash(request, N_("Enter a valid e-mail address, without '+'."), "error")
        return redirect(request, back)
    try:
        inbox = await channels.get_inbox(db, agent.principal, inbox_id)
        current = await channels.inbox_addresses(db, inbox)
        if change != "add" and address.lower() not in current:
            raise NotFound(f"Inbox {inbox_id} does not receive mail for {address}")
        if change == "add":
            await channels.update_inbox(db, agent.principal, inbox_id,
                                        addresses=[*current, address])
        elif change == "remove":
            await channels.update_inbox(db, agent.principal, inbox_id, addresses=[
                a for a in current if a != address.lower()])
        else:
            await channels.update_inbox(db, agent.principal, inbox_id,
                                        email_settings={"email": address})
    except FrontdeskError as exc:
        return _refused(request, exc, back)
    flash(request, ADDRESS_CHANGES[change])
    return redirect(request, back)


ADDRESS_CHANGES = {
    "add": N_("The address is added: the inbox receives mail sent to it."),
    "remove": N_("The address is removed: mail sent to it is refused now."),
    "primary": N_("The primary address is changed."),
}


@router.post("/admin/inboxes/{inbox_id}/addresses")
async def add_address(
    inbox_id: PathId, request: Request, db: DbSession, agent: AdminAgent,
    address: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    return await _change_addresses(request, db, agent, inbox_id, address, "add")


@router.post("/admin/inboxes/{inbox_id}/addresses/remove")
async def remove_address(
    inbox_id: PathId, request: Request, db: DbSession, agent: AdminAgent,
    address: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    return await _change_addresses(request, db, agent, inbox_id, address, "remove")


@router.post("/admin/inboxes/{inbox_id}/addresses/primary")
async def make_address_primary(
    inbox_id: PathId, request: Request, db: DbSession, agent: AdminAgent,
    address: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    return await _change_addresses(request, db, agent, inbox_id, address, "primary")


@router.post("/admin/inboxes/{inbox_id}/imap")
async def save_imap_settings(
    inbox_id: PathId, request: Request, db: DbSession, agent: AdminAgent, runtime: RuntimeDep,
    background: BackgroundTasks,
    host: Annotated[str, Form(max_length=253)] = "",
    port: Annotated[str, Form(max_length=5)] = "",
    tls: Annotated[str, Form(max_length=10)] = "tls",
    username: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    mailbox: Annotated[str, Form(max_length=200)] = "INBOX",
    after_import: Annotated[str, Form(max_length=10)] = "seen",
    move_to: Annotated[str, Form(max_length=200)] = "",
    enabled: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    back = f"/app/admin/inboxes/{inbox_id}#imap-title"
    try:
        data = ImapSettingsIn(
            host=host, port=port or 0, tls=tls, username=username.strip(),
            # Blank keeps the stored password: the form never holds it.
            password=password or None, mailbox=mailbox.strip() or "INBOX",
            after_import=after_import, move_to=move_to.strip() or None,
            enabled=enabled == "1")
    except ValidationError as exc:
        fields = [str(e["loc"][0]) for e in exc.errors() if e["loc"]]
        known = [IMAP_FIELD_REFUSALS[f] for f in fields if f in IMAP_FIELD_REFUSALS]
        if not fields and after_import == "move":
            known = [IMAP_FIELD_REFUSALS["move_to"]]
        flash(request, known[0] if known else GENERIC_REFUSAL, "error")
        return redirect(request, back)
    if data.password is None and await _imap_state(db, agent, inbox_id) is None:
        flash(request, N_("The first IMAP settings need the password."), "error")
        return redirect(request, back)
    try:
        await imap_service.configure_imap(
            db, agent.principal, inbox_id, data, box=secret_box(runtime.settings),
            allow_private=runtime.settings.imap_allow_private)
    except FrontdeskError as exc:
        return _refused(request, exc, back)
    # After the response, so after the commit: this process's pollers look at once.
    background.add_task(runtime.imap_pollers.wake)
    flash(request, N_("The IMAP settings are saved."))
    return redirect(request, back)


# --- quarantine -------------------------------------------------------------------------


def quarantined_sender(row: QuarantinedEmail) -> str | None:
    """Who sent it, if that can be told: the envelope sender, else the From header (a
    quarantined mail may be unreadable, so only its header block is looked at)."""
    if row.envelope_sender:
        return row.envelope_sender
    try:
        head = BytesHeaderParser().parsebytes(row.raw[:SOURCE_PREVIEW_BYTES])
        value = head.get("From")
        if not value:
            return None
        name, address = parseaddr(str(make_header(decode_header(str(value)))))
    except Exception:
        return None
    return address or name or None


@router.get("/admin/quarantine")
async def quarantine_page(
    request: Request, db: ReadSession, agent: AdminAgent, all: str = "",
) -> Response:
    rows = await email.list_quarantine(db, agent.principal, include_reprocessed=all == "1",
                                       limit=QUARANTINE_PAGE)
    inboxes = {i.id: i for i in await channels.list_inboxes(db, agent.principal)}
    return _page(request, agent, "admin/quarantine.html", "quarantine",
                 rows=[(row, quarantined_sender(row)) for row in rows], inboxes=inboxes,
                 show_all=all == "1", page_size=QUARANTINE_PAGE)


@router.get("/admin/quarantine/{quarantine_id}")
async def quarantined_mail_page(
    quarantine_id: PathId, request: Request, db: ReadSession, agent: AdminAgent,
) -> Response:
    row = await email.get_quarantined(db, agent.principal, quarantine_id)
    inbox = await channels.get_inbox(db, agent.principal, row.inbox_id)
    conversation_id = None
    if row.message_id is not None:
        conversation_id = await db.scalar(select(Message.conversation_id).where(
            Message.id == row.message_id, Message.workspace_id == agent.workspace.id))
    preview = row.raw[:SOURCE_PREVIEW_BYTES].decode("utf-8", errors="replace")
    return _page(request, agent, "admin/quarantined_mail.html", "quarantine", row=row,
                 inbox=inbox, sender=quarantined_sender(row), conversation_id=conversation_id,
                 preview=preview, cut=len(row.raw) > SOURCE_PREVIEW_BYTES)


@router.get("/admin/quarantine/{quarantine_id}/raw")
async def download_quarantined_mail(
    quarantine_id: PathId, db: ReadSession, agent: AdminAgent,
) -> Response:
    row = await email.get_quarantined(db, agent.principal, quarantine_id)
    return Response(row.raw, media_type="application/octet-stream", headers={
        **_FILE_HEADERS,
        "Content-Disposition": f'attachment; filename="quarantined-{row.id}.eml"'})


@router.post("/admin/quarantine/{quarantine_id}/reprocess")
async def reprocess_quarantined_mail(
    quarantine_id: PathId, request: Request, db: DbSession, agent: AdminAgent,
    runtime: RuntimeDep,
) -> Response:
    back = f"/app/admin/quarantine/{quarantine_id}"
    # The mail is stored by the group-commit writer, in its own transaction. This
    # request's (opened to check the sign-in) has written nothing; it ends first, as on
    # SQLite it would hold the write lock the writer waits for.
    await db.commit()
    try:
        result = await email.reprocess_quarantined(runtime, agent.workspace.id, quarantine_id)
    except FrontdeskError as exc:
        return _refused(request, exc, back)
    flash(request, REPROCESS_OUTCOMES[result.status],
          "error" if result.status == "quarantined" else "ok")
    return redirect(request, back)


__all__ = ["router"]
