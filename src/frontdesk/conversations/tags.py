"""A workspace's tag vocabulary: how often each tag is used, renaming and deleting one.

Tags live on conversations (`conversation_tags` links a conversation to a `tags` row); the
conversation service adds and removes them one conversation at a time. This is the admin's
side: one change to the vocabulary reaches every conversation that carries the tag.

Such a change is one activity entry (on the tag), and a `conversation.updated` event for
each conversation that carried the tag, with `changes.tags = [before, after]` (its tags),
recorded in the same transaction: open inboxes and webhooks otherwise keep showing the old
name. The events are built in one pass whatever the number of conversations (a query for
their tags, one for the conversations, the outbox rows in one multi-row insert), never a query
per conversation; a tag on 50,000 conversations does mean 50,000 events.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Role
from frontdesk.accounts.service import Principal
from frontdesk.conversations.events import ConversationEvent
from frontdesk.conversations.models import Conversation, ConversationTag, Tag
from frontdesk.conversations.schemas import ConversationOut
from frontdesk.core.activity import record_activity
from frontdesk.core.errors import InvalidInput, NotFound
from frontdesk.core.events import EventType, record_events
from frontdesk.db.base import BigId

MAX_TAG_CHARS = 100


@dataclass(frozen=True)
class TagUsage:
    id: int
    name: str
    conversations: int


def normalize_tag(name: str) -> str:
    """The form tags are stored in (the same rule as TagsIn): trimmed, lower case."""
    normalized = name.strip().lower()
    if not normalized or len(normalized) > MAX_TAG_CHARS:
        raise InvalidInput("A tag is 1 to 100 characters", code="bad_tag",
                           details=[{"field": "body.name", "message": "1 to 100 characters"}])
    return normalized


async def list_tag_usage(session: AsyncSession, principal: Principal) -> list[TagUsage]:
    """Every tag of the workspace with the number of conversations carrying it, by name."""
    used = (
        select(ConversationTag.tag_id, func.count().label("n"))
        .where(ConversationTag.workspace_id == principal.workspace_id)
        .group_by(ConversationTag.tag_id)
        .subquery()
    )
    rows = await session.execute(
        select(Tag.id, Tag.name, func.coalesce(used.c.n, 0))
        .outerjoin(used, used.c.tag_id == Tag.id)
        .where(Tag.workspace_id == principal.workspace_id)
        .order_by(Tag.name)
    )
    return [TagUsage(id=i, name=n, conversations=int(c)) for i, n, c in rows.tuples().all()]


async def get_tag(session: AsyncSession, principal: Principal, name: str) -> Tag:
    """By name, as the API names tags; another workspace's tag is not found."""
    tag = (await session.execute(
        select(Tag).where(Tag.workspace_id == principal.workspace_id,
                          Tag.name == name.strip().lower())
    )).scalar_one_or_none()
    if tag is None:
        raise NotFound(f"Tag '{name}' was not found")
    return tag


async def rename_tag(
    session: AsyncSession, principal: Principal, name: str, new_name: str
) -> TagUsage:
    """Rename a tag everywhere. Renaming it to a tag that exists merges the two (the usual
    reason: "refund" and "refunds" both in use): every conversation keeps one of it."""
    principal.require(Role.ADMIN)
    tag = await get_tag(session, principal, name)
    target_name = normalize_tag(new_name)
    old_name = tag.name
    if target_name == old_name:
        return await _usage(session, principal, tag)
    target = (await session.execute(
        select(Tag).where(Tag.workspace_id == principal.workspace_id, Tag.name == target_name)
    )).scalar_one_or_none()
    carriers = await _Carriers.load(session, principal, tag)
    if target is None:
        tag.name = target_name
        await session.flush()
        survivor = tag
    else:
        already = select(ConversationTag.conversation_id).where(
            ConversationTag.tag_id == target.id)
        await session.execute(insert(ConversationTag).from_select(
            ["conversation_id", "tag_id", "workspace_id"],
            select(ConversationTag.conversation_id, literal(target.id, BigId),
                   ConversationTag.workspace_id)
            .where(ConversationTag.tag_id == tag.id,
                   ConversationTag.conversation_id.not_in(already))))
        await _delete(session, tag)
        survivor = target
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action="tag.renamed", subject_type="tag",
                    subject_id=survivor.id,
                    changes={"name": [old_name, target_name], "merged": target is not None})
    await carriers.emit(session, principal, old_name, target_name)
    return await _usage(session, principal, survivor)


async def delete_tag(session: AsyncSession, principal: Principal, name: str) -> int:
    """Remove a tag from every conversation and from the vocabulary; the number of
    conversations that carried it."""
    principal.require(Role.ADMIN)
    tag = await get_tag(session, principal, name)
    usage = await _usage(session, principal, tag)
    carriers = await _Carriers.load(session, principal, tag)
    await _delete(session, tag)
    record_activity(session, workspace_id=principal.workspace_id, actor_type="user",
                    actor_id=principal.user_id, action="tag.deleted", subject_type="tag",
                    subject_id=usage.id,
                    changes={"name": usage.name, "conversations": usage.conversations})
    await carriers.emit(session, principal, usage.name, None)
    return usage.conversations


@dataclass(frozen=True)
class _Carriers:
    """The conversations carrying a tag and each one's tags, read before the tag changes."""

    conversations: list[Conversation]
    tags: dict[int, list[str]]

    @classmethod
    async def load(cls, session: AsyncSession, principal: Principal, tag: Tag) -> _Carriers:
        ws = principal.workspace_id
        # A subquery, never a list of ids: it may be every conversation of the workspace.
        carrying = select(ConversationTag.conversation_id).where(
            ConversationTag.workspace_id == ws, ConversationTag.tag_id == tag.id)
        rows = await session.execute(
            select(ConversationTag.conversation_id, Tag.name)
            .join(Tag, Tag.id == ConversationTag.tag_id)
            .where(ConversationTag.workspace_id == ws,
                   ConversationTag.conversation_id.in_(carrying))
            .order_by(ConversationTag.conversation_id, Tag.name))
        tags: dict[int, list[str]] = {}
        for conversation_id, name in rows.tuples():
            tags.setdefault(conversation_id, []).append(name)
        conversations = list((await session.execute(
            select(Conversation)
            .where(Conversation.workspace_id == ws, Conversation.id.in_(carrying))
            .order_by(Conversation.id))).scalars())
        return cls(conversations=conversations, tags=tags)

    async def emit(self, session: AsyncSession, principal: Principal, old_name: str,
                   new_name: str | None) -> None:
        """`conversation.updated` for each carrier: `old_name` became `new_name` (or went,
        when None) on it; into the outbox, as every other change of a conversation."""
        events = []
        for conversation in self.conversations:
            before = self.tags.get(conversation.id, [])
            after = sorted({name for name in before if name != old_name}
                           | ({new_name} if new_name is not None else set()))
            if after == before:
                continue
            out = ConversationOut.model_validate(conversation)
            out.tags = after
            events.append(ConversationEvent(conversation=out, changes={"tags": [before, after]},
                                            actor_user_id=principal.user_id))
        await record_events(session, principal.workspace_id, EventType.CONVERSATION_UPDATED,
                            events)


async def _delete(session: AsyncSession, tag: Tag) -> None:
    # The links explicitly: SQLite enforces ON DELETE CASCADE only with foreign keys on.
    await session.execute(delete(ConversationTag).where(ConversationTag.tag_id == tag.id))
    await session.execute(delete(Tag).where(Tag.id == tag.id,
                                            Tag.workspace_id == tag.workspace_id))
    await session.flush()


async def _usage(session: AsyncSession, principal: Principal, tag: Tag) -> TagUsage:
    count = (await session.execute(
        select(func.count()).select_from(ConversationTag)
        .where(ConversationTag.workspace_id == principal.workspace_id,
               ConversationTag.tag_id == tag.id)
    )).scalar_one()
    return TagUsage(id=tag.id, name=tag.name, conversations=int(count))
