"""One action on a selection of conversations (the inbox's bulk actions).

Each conversation goes through the same service function as a single change, so it gets
the same events, activity line and permission checks; the request's one transaction makes
the whole selection change or none of it. The ids are checked against the workspace before
anything changes: an id of another workspace answers 404 like an unknown one, and since
the request is refused as a whole, nothing of anyone's is changed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.service import Principal
from frontdesk.conversations import reads, service
from frontdesk.conversations.models import Conversation, ConversationStatus
from frontdesk.conversations.schemas import (
    AssignIn,
    BulkAction,
    BulkIn,
    ConversationOut,
    StatusIn,
)
from frontdesk.core.errors import InvalidInput, NotFound


def _only_with(field: str, action: BulkAction) -> InvalidInput:
    return InvalidInput(f"{field} only goes with action {action.value}", details=[
        {"field": f"body.{field}", "message": f"only goes with action {action.value}"}])


def _check_fields(bulk: BulkIn) -> None:
    if bulk.action is not BulkAction.ASSIGN:
        for name in ("assignee_id", "team_id"):
            if getattr(bulk, name) is not None:
                raise _only_with(name, BulkAction.ASSIGN)
    if bulk.action is BulkAction.TAG:
        if not bulk.tags:
            raise InvalidInput("Tagging needs tags", details=[
                {"field": "body.tags", "message": "required with action tag"}])
    elif bulk.tags is not None:
        raise _only_with("tags", BulkAction.TAG)


async def apply_bulk(
    session: AsyncSession, principal: Principal, bulk: BulkIn
) -> list[ConversationOut]:
    """The changed conversations, in the order of `bulk.ids`."""
    _check_fields(bulk)
    # Locked in id order, as every bulk request locks them: two overlapping selections
    # wait for each other instead of deadlocking.
    found = set((await session.execute(
        select(Conversation.id)
        .where(Conversation.workspace_id == principal.workspace_id,
               Conversation.id.in_(bulk.ids))
        .order_by(Conversation.id)
        .with_for_update()
    )).scalars())
    missing = [i for i in bulk.ids if i not in found]
    if missing:
        raise NotFound(f"Conversation {missing[0]} was not found; nothing was changed",
                       details=[{"field": "body.ids", "message": f"{i} was not found"}
                                for i in missing])
    out: list[ConversationOut] = []
    for conversation_id in bulk.ids:
        if bulk.action is BulkAction.ASSIGN:
            out.append(await service.assign_conversation(
                session, principal, conversation_id,
                AssignIn(assignee_id=bulk.assignee_id, team_id=bulk.team_id)))
        elif bulk.action is BulkAction.TAG:
            assert bulk.tags
            out.append(await service.add_tags(session, principal, conversation_id, bulk.tags))
        elif bulk.action in (BulkAction.READ, BulkAction.UNREAD):
            if bulk.action is BulkAction.READ:
                await reads.mark_conversation_read(session, principal, conversation_id)
            else:
                await reads.mark_conversation_unread(session, principal, conversation_id)
            out.append(await service.to_out(
                session, await service.get_conversation(session, principal, conversation_id)))
        else:
            out.append(await service.change_status(
                session, principal, conversation_id,
                StatusIn(status=ConversationStatus.RESOLVED)))
    return out
