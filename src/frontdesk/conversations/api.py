from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from frontdesk.accounts.auth import CurrentPrincipal
from frontdesk.conversations import bulk, reads, service, uploads
from frontdesk.conversations.models import ConversationStatus, Priority
from frontdesk.conversations.schemas import (
    AssignIn,
    BulkIn,
    BulkOut,
    ConversationForUserOut,
    ConversationOut,
    ConversationPage,
    ConversationSort,
    ConversationUpdate,
    MarkReadIn,
    MessageOrder,
    MessageOut,
    MessagePage,
    ReadStateOut,
    ReplyIn,
    StatusIn,
    TagsIn,
    TagsOut,
    UploadOut,
)
from frontdesk.core.deps import DbSession, get_runtime
from frontdesk.core.ids import PathId, QueryId

router = APIRouter(tags=["conversations"])

Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the page before")]
TagParam = Annotated[str, Path(min_length=1, max_length=100)]


@router.get("/conversations", response_model=ConversationPage)
async def list_conversations(
    db: DbSession,
    principal: CurrentPrincipal,
    status: Annotated[list[ConversationStatus] | None, Query()] = None,
    inbox_id: QueryId = None,
    assignee: Annotated[str | None, Query(max_length=20,
                                          description="a user id, 'me' or 'none'")] = None,
    team_id: QueryId = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    priority: Annotated[list[Priority] | None, Query()] = None,
    channel: Annotated[str | None, Query(max_length=32,
                                         description="the inbox's channel: api, email...")] = None,
    q: Annotated[str | None, Query(max_length=200,
                                   description="in the subject, the contact's name, e-mail or "
                                   "phone, or a message")] = None,
    unread: Annotated[bool | None, Query(description="true: only those unread for you; "
                                         "false: only those you have read")] = None,
    automatic: Annotated[bool | None, Query(description=(
        "true: only those opened by automatic mail (out-of-office replies, alerts) that "
        "no customer has written in since; false: only the others"))] = None,
    sort: ConversationSort = ConversationSort.NEWEST,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ConversationPage:
    """`sort`: newest / oldest activity first, the customer waiting longest first, or
    priority (urgent first, then newest activity). `status` and `priority` may repeat
    (?status=open&status=pending). Each item's `unread` is the calling user's own: a
    customer message came after the last one they read, or they marked it unread."""
    filters = service.ConversationFilters(status=status, inbox_id=inbox_id, channel=channel,
                                          assignee=assignee, team_id=team_id, tag=tag,
                                          priority=priority, q=q, unread=unread,
                                          automatic=automatic)
    rows, next_cursor = await service.list_conversations(db, principal, filters, cursor=cursor,
                                                         limit=limit, sort=sort)
    return ConversationPage(items=await service.to_user_out_many(db, principal, rows),
                            next_cursor=next_cursor)


@router.post("/conversations/bulk", response_model=BulkOut)
async def bulk_change(body: BulkIn, db: DbSession, principal: CurrentPrincipal) -> BulkOut:
    """Assign, tag or resolve up to 100 conversations at once, or mark them read or unread
    for yourself: all of them or, if any id is unknown (or another workspace's), none
    (404)."""
    return BulkOut(items=await bulk.apply_bulk(db, principal, body))


@router.get("/conversations/{conversation_id}", response_model=ConversationForUserOut)
async def get_conversation(
    conversation_id: PathId, db: DbSession, principal: CurrentPrincipal
) -> ConversationForUserOut:
    """With `unread` for the calling user; reading it here does not mark it read (a
    client shows it first, then says so with POST .../read)."""
    conversation = await service.get_conversation(db, principal, conversation_id)
    return (await service.to_user_out_many(db, principal, [conversation]))[0]


@router.post("/conversations/{conversation_id}/read", response_model=ReadStateOut)
async def mark_read(
    conversation_id: PathId, db: DbSession, principal: CurrentPrincipal,
    body: MarkReadIn | None = None,
) -> ReadStateOut:
    """You have read the conversation: up to `up_to_message_id` (the newest message you
    showed), or every message it has now. Your position never moves back, and reading
    clears a "marked unread". Only your own state changes; your other connections hear
    `conversation.read` on the real-time socket (no other user, no webhook)."""
    return await reads.mark_conversation_read(
        db, principal, conversation_id, body.up_to_message_id if body else None)


@router.post("/conversations/{conversation_id}/unread", response_model=ReadStateOut)
async def mark_unread(
    conversation_id: PathId, db: DbSession, principal: CurrentPrincipal
) -> ReadStateOut:
    """Mark the conversation unread for yourself, until you read it again."""
    return await reads.mark_conversation_unread(db, principal, conversation_id)


@router.patch("/conversations/{conversation_id}", response_model=ConversationOut)
async def update_conversation(
    conversation_id: PathId, patch: ConversationUpdate, db: DbSession, principal: CurrentPrincipal
) -> ConversationOut:
    return await service.update_conversation(db, principal, conversation_id, patch)


@router.get("/conversations/{conversation_id}/messages", response_model=MessagePage)
async def list_messages(
    conversation_id: PathId, db: DbSession, principal: CurrentPrincipal,
    cursor: Cursor = None, limit: Limit = 100,
    order: Annotated[MessageOrder, Query(
        description="`asc` (the default): oldest first, the thread as it reads; `desc`: "
        "newest first, so the first page holds the latest messages and `next_cursor` goes "
        "back in time. A cursor only continues the order that gave it out.")] = MessageOrder.ASC,
) -> MessagePage:
    """The conversation's messages by id, `limit` at a time (at most 200)."""
    rows, next_cursor = await service.list_messages(db, principal, conversation_id,
                                                    cursor=cursor, limit=limit, order=order)
    return MessagePage(items=[MessageOut.model_validate(m) for m in rows], next_cursor=next_cursor)


@router.post("/conversations/{conversation_id}/messages", response_model=MessageOut,
             status_code=201)
async def reply(
    conversation_id: PathId, body: ReplyIn, request: Request, db: DbSession,
    principal: CurrentPrincipal,
) -> MessageOut:
    """A reply to the customer, or a private note (`private`). A conversation merged into
    another takes neither: 409 `conversation_merged`, naming the one to write in."""
    message = await service.reply_to_conversation(
        db, principal, conversation_id, body,
        upload_key=uploads.upload_key(get_runtime(request).settings))
    return MessageOut.model_validate(message)


@router.post("/attachments", response_model=UploadOut, status_code=201,
             openapi_extra=uploads.UPLOAD_OPENAPI)
async def upload_attachment(request: Request, principal: CurrentPrincipal) -> UploadOut:
    """Store a file (multipart field `file`) for a reply; pass the answered `id` in the
    reply's `upload_ids`. At most FRONTDESK_EMAIL_MAX_ATTACHMENT_BYTES (413 beyond)."""
    settings = get_runtime(request).settings
    received = await uploads.read_upload(request, settings.email_max_attachment_bytes)
    stored = await run_in_threadpool(uploads.store_upload, settings, principal, received.data,
                                     received.filename, received.content_type)
    return UploadOut(id=stored.upload_id, filename=stored.filename,
                     content_type=stored.content_type, size=stored.size)


@router.post("/conversations/{conversation_id}/assign", response_model=ConversationOut)
async def assign(
    conversation_id: PathId, body: AssignIn, db: DbSession, principal: CurrentPrincipal
) -> ConversationOut:
    return await service.assign_conversation(db, principal, conversation_id, body)


@router.post("/conversations/{conversation_id}/status", response_model=ConversationOut)
async def change_status(
    conversation_id: PathId, body: StatusIn, db: DbSession, principal: CurrentPrincipal
) -> ConversationOut:
    """A merged conversation stays closed: 409 `conversation_merged`."""
    return await service.change_status(db, principal, conversation_id, body)


@router.post("/conversations/{conversation_id}/tags", response_model=ConversationOut)
async def add_tags(
    conversation_id: PathId, body: TagsIn, db: DbSession, principal: CurrentPrincipal
) -> ConversationOut:
    return await service.add_tags(db, principal, conversation_id, body.tags)


@router.delete("/conversations/{conversation_id}/tags/{tag}", response_model=ConversationOut)
async def remove_tag(
    conversation_id: PathId, tag: TagParam, db: DbSession, principal: CurrentPrincipal
) -> ConversationOut:
    return await service.remove_tag(db, principal, conversation_id, tag)


@router.get("/tags", response_model=TagsOut)
async def list_tags(db: DbSession, principal: CurrentPrincipal) -> TagsOut:
    return TagsOut(tags=await service.list_workspace_tags(db, principal))
