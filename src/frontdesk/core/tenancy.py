"""Workspace-scoped reads. Tenant rows are fetched through here so that an id of another
workspace behaves exactly like an id that does not exist."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core.errors import NotFound
from frontdesk.core.ids import is_storable_id
from frontdesk.db.base import Base

T = TypeVar("T", bound=Base)


async def get_in_workspace(
    session: AsyncSession, model: type[T], workspace_id: int, row_id: int, *, what: str,
    for_update: bool = False,
) -> T:
    if not is_storable_id(row_id):  # no row has it, and the database would raise on it
        raise NotFound(f"{what} {row_id} was not found")
    table: Any = model  # every tenant model has `id` and `workspace_id` columns
    stmt: Any = select(model).where(table.id == row_id, table.workspace_id == workspace_id)
    if for_update:
        stmt = stmt.with_for_update()
    row: T | None = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"{what} {row_id} was not found")
    return row
