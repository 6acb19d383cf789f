"""Row ids as the API accepts them.

Every id is a positive 64-bit integer (BIGINT on PostgreSQL, INTEGER on SQLite). An id
outside that range can name no row, so it is refused at the edge (422) instead of reaching
the database, where PostgreSQL and SQLite both raise on it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

MAX_ID = 2**63 - 1


def is_storable_id(value: int) -> bool:
    return 1 <= value <= MAX_ID


IdIn = Annotated[int, Field(ge=1, le=MAX_ID)]
"""An id inside a request body."""

PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
"""An id in the URL path: /conversations/{conversation_id}."""

QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
"""An optional id in the query string: ?inbox_id=3."""
