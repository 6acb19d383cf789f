"""Read-only queries for screens that the domain services do not answer (yet): counts per
view, list previews, a contact's other conversations. Nothing here writes; every query is
scoped by the principal's workspace. Routes call these and the services, never SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from frontdesk.accounts.service import Principal
from frontdesk.contacts.models import Contact
from frontdesk.conversations import service as conversations
from frontdesk.conversations.models import (
    CONTINUABLE_STATUSES,
    Conversation,
    ConversationStatus,
    Message,
    MessageType,
)
from frontdesk.conversations.service import ConversationFilters
from frontdesk.core.pagination import cursor_id, cursor_time, decode_cursor, encode_cursor

PREVIEW_CHARS = 160


Group = tuple[str, int, int | None, int | None, str, int]

# Statuses always counted: the work still to do. Resolved and closed conversations (most of
# a workspace, in time) are counted only while one of them is the list's status.
ACTIVE_STATUSES: tuple[str, ...] = CONTINUABLE_STATUSES
ALL_STATUSES = tuple(s.value for s in ConversationStatus)


@dataclass
class Counts:
    views: dict[str, int] = field(default_factory=dict)  # mine / unassigned / all
    statuses: dict[str, int] = field(default_factory=dict)  # the counted statuses only
    inboxes: dict[int, int] = field(default_factory=dict)
    teams: dict[int, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    saved: dict[int, int | None] = field(default_factory=dict)  # None: not counted
    counted: tuple[str, ...] = ()  # the statuses the scan covered
    # (status, inbox, team, assignee, priority, conversations): the grouped scan itself.
    groups: list[Group] = field(default_factory=list)

    def status_count(self, status: str) -> int | None:
        """A status tab's number ("any": all of them), or None when it was not counted."""
        if status == "any":
            counted = set(self.counted) == set(ALL_STATUSES)
            return sum(self.statuses.values()) if counted else None
        return self.statuses.get(status, 0) if status in self.counted else None


class GroupedCounts:
    """The grouped scan of each workspace, kept until one of its conversations changes.

    Every page and every live update asks for the navigation's numbers, and at 100,000
    conversations the scan costs tens of milliseconds; the workspace's latest `updated_at`
    (one step down an index) says whether the last scan still holds. A change that bypasses
    the services' `updated_at` (a team or user deleted, which empties their column in the
    database) shows at the next change. Per process, bounded. After a change, the pages
    asking at once (every agent's live update) wait for one recount rather than each
    making their own."""

    LIMIT = 512

    def __init__(self) -> None:
        self._kept: dict[tuple[str, int, tuple[str, ...]], tuple[Any, list[Group]]] = {}
        self._recounting: dict[tuple[str, int, tuple[str, ...]], asyncio.Lock] = {}

    async def groups(self, session: AsyncSession, workspace_id: int,
                     statuses: tuple[str, ...]) -> list[Group]:
        version = (await session.execute(
            select(func.max(Conversation.updated_at))
            .where(Conversation.workspace_id == workspace_id)
        )).scalar_one_or_none()
        if version is None:  # no conversations yet
            return []
        bind = session.bind  # the database: several apps (and tests) share this process
        database = str(bind.url) if isinstance(bind, AsyncEngine) else str(id(bind))
        key = (database, workspace_id, statuses)
        kept = self._kept.get(key)
        if self._holds(kept, version):
            assert kept is not None
            return kept[1]
        if len(self._recounting) >= self.LIMIT:
            self._recounting.pop(next(iter(self._recounting)))
        async with self._recounting.setdefault(key, asyncio.Lock()):
            kept = self._kept.get(key)
            if self._holds(kept, version):  # counted meanwhile, as of this change or later
                assert kept is not None
                return kept[1]
            return await self._recount(session, key, version)

    @staticmethod
    def _holds(kept: tuple[Any, list[Group]] | None, version: Any) -> bool:
        return kept is not None and kept[0] >= version

    async def _recount(self, session: AsyncSession, key: tuple[str, int, tuple[str, ...]],
                       version: Any) -> list[Group]:
        _, workspace_id, statuses = key
        # Grouped by the assignee itself (as many groups as agents, not rows), and "mine"
        # and "unassigned" derived by the caller: a CASE with a bound user id in both SELECT
        # and GROUP BY is two different expressions to PostgreSQL.
        rows = await session.execute(
            select(Conversation.status, Conversation.inbox_id, Conversation.team_id,
                   Conversation.assignee_id, Conversation.priority, func.count())
            .where(Conversation.workspace_id == workspace_id,
                   Conversation.status.in_(statuses))
            .group_by(Conversation.status, Conversation.inbox_id, Conversation.team_id,
                      Conversation.assignee_id, Conversation.priority)
        )
        groups: list[Group] = list(rows.tuples().all())
        if len(self._kept) >= self.LIMIT:
            self._kept.pop(next(iter(self._kept)))
        self._kept[key] = (version, groups)
        return groups


GROUPED_COUNTS = GroupedCounts()


async def inbox_counts(
    session: AsyncSession, principal: Principal, *, view: str, statuses: Sequence[str],
    inbox_id: int | None, team_id: int | None, channels: dict[int, str] | None = None,
) -> Counts:
    """Every number of the navigation from one grouped scan of the workspace (see
    GroupedCounts).

    Views, inboxes, channels and teams count within the chosen statuses; status tabs count
    within the chosen view, inbox and team: each number is what a click on it would list
    (before tag, priority and text filters)."""
    counted = tuple(s for s in ALL_STATUSES
                    if s in ACTIVE_STATUSES or not statuses or s in statuses)
    counts = Counts(views={"mine": 0, "unassigned": 0, "all": 0}, counted=counted)
    counts.groups = await GROUPED_COUNTS.groups(session, principal.workspace_id, counted)
    for status, row_inbox, row_team, assignee_id, _priority, n in counts.groups:
        is_mine = assignee_id == principal.user_id
        is_unassigned = assignee_id is None
        in_view = (view == "all" or (view == "mine" and is_mine)
                   or (view == "unassigned" and is_unassigned))
        if in_view and inbox_id in (None, row_inbox) and team_id in (None, row_team):
            counts.statuses[status] = counts.statuses.get(status, 0) + n
        if statuses and status not in statuses:
            continue
        counts.views["all"] += n
        counts.views["mine"] += n if is_mine else 0
        counts.views["unassigned"] += n if is_unassigned else 0
        counts.inboxes[row_inbox] = counts.inboxes.get(row_inbox, 0) + n
        if channels and row_inbox in channels:
            channel = channels[row_inbox]
            counts.channels[channel] = counts.channels.get(channel, 0) + n
        if row_team is not None:
            counts.teams[row_team] = counts.teams.get(row_team, 0) + n
    return counts


async def count_saved_views(
    session: AsyncSession, principal: Principal, counts: Counts,
    views: Sequence[tuple[int, ConversationFilters]], channels: dict[int, str],
) -> None:
    """Each saved view's number into `counts.saved`. Views on the grouped columns alone
    are summed from the scan `inbox_counts` made; a tag costs one count query of its
    own (through the tag's index). Not counted: a text search (it would read every message
    of the workspace on each page), and statuses the scan left out (resolved, closed)."""
    for view_id, filters in views:
        wanted = [s.value for s in filters.status] if filters.status else ALL_STATUSES
        if filters.q or not set(wanted) <= set(counts.counted):
            counts.saved[view_id] = None
        elif filters.tag:
            counts.saved[view_id] = await conversations.count_conversations(
                session, principal, filters)
        else:
            counts.saved[view_id] = sum(
                n for status, inbox, team, assignee, priority, n in counts.groups
                if _in_view(filters, principal, channels, status, inbox, team, assignee,
                            priority))


def _in_view(filters: ConversationFilters, principal: Principal, channels: dict[int, str],
             status: str, inbox: int, team: int | None, assignee: int | None,
             priority: str) -> bool:
    """Does a group of the scan belong to the view? (The rules of conversations.service's
    filters, on the grouped columns.)"""
    if filters.status and status not in filters.status:
        return False
    if filters.inbox_id is not None and inbox != filters.inbox_id:
        return False
    if filters.channel and channels.get(inbox) != filters.channel:
        return False
    if filters.team_id is not None and team != filters.team_id:
        return False
    if filters.priority and priority not in filters.priority:
        return False
    if filters.assignee == "me":
        return assignee == principal.user_id
    if filters.assignee == "none":
        return assignee is None
    return filters.assignee is None or str(assignee) == filters.assignee


async def contacts_by_id(
    session: AsyncSession, principal: Principal, ids: Sequence[int]
) -> dict[int, Contact]:
    if not ids:
        return {}
    rows = await session.execute(
        select(Contact).where(Contact.workspace_id == principal.workspace_id,
                              Contact.id.in_(set(ids)))
    )
    return {c.id: c for c in rows.scalars()}


@dataclass(frozen=True)
class Preview:
    message_type: str
    text: str


async def last_message_previews(
    session: AsyncSession, principal: Principal, conversation_ids: Sequence[int]
) -> dict[int, Preview]:
    """The latest customer or agent message of each conversation, shortened: what a list
    row shows under the name."""
    if not conversation_ids:
        return {}
    latest = (
        select(func.max(Message.id))
        .where(Message.workspace_id == principal.workspace_id,
               Message.conversation_id.in_(set(conversation_ids)),
               Message.message_type.in_([MessageType.INCOMING.value, MessageType.OUTGOING.value]))
        .group_by(Message.conversation_id)
    )
    rows = await session.execute(
        select(Message.conversation_id, Message.message_type,
               func.substr(Message.content, 1, PREVIEW_CHARS))
        .where(Message.id.in_(latest))
    )
    return {cid: Preview(kind, " ".join((text or "").split())) for cid, kind, text in rows.tuples()}


async def contact_conversations(
    session: AsyncSession, principal: Principal, contact_id: int, *, limit: int = 20,
    cursor: str | None = None, exclude: int | None = None, q: str | None = None,
    merged: bool = True,
) -> tuple[list[Conversation], str | None]:
    """A page of the contact's conversations on every inbox, newest activity first (a
    keyset page: the cursor holds the last row's activity time and id), without `exclude`
    (and, unless `merged`, without those merged into another); and the next page's
    cursor. `q`: only those whose number is it ("#12" or "12") or whose subject holds it."""
    stmt = select(Conversation).where(Conversation.workspace_id == principal.workspace_id,
                                      Conversation.contact_id == contact_id)
    if exclude is not None:
        stmt = stmt.where(Conversation.id != exclude)
    if not merged:
        stmt = stmt.where(Conversation.merged_into_id.is_(None))
    text = (q or "").strip().lstrip("#").strip()
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        matches: list[ColumnElement[bool]] = [
            Conversation.subject.ilike(f"%{escaped}%", escape="\\")]
        if text.isdigit() and len(text) <= 18:
            matches.append(Conversation.id == int(text))
        stmt = stmt.where(or_(*matches))
    key = tuple_(Conversation.last_activity_at, Conversation.id)
    if cursor:
        at, before_id = decode_cursor(cursor, 2)
        stmt = stmt.where(key < (cursor_time(at), cursor_id(before_id)))
    rows = list((await session.execute(
        stmt.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
        .limit(limit + 1)
    )).scalars())
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last.last_activity_at.isoformat(), last.id)
    return rows[:limit], next_cursor
