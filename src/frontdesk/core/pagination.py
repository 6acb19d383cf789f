"""Opaque cursors for keyset pagination: stable under inserts, cheap at any depth."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from frontdesk.core.errors import InvalidInput
from frontdesk.core.ids import is_storable_id


def _invalid() -> InvalidInput:
    return InvalidInput("The cursor is not one this API gave out", code="invalid_cursor",
                        details=[{"field": "query.cursor", "message": "not a cursor of this list"}])


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise _invalid() from exc
    if not isinstance(key, list) or len(key) != arity:
        raise _invalid()
    return key


def cursor_id(value: Any) -> int:
    """An id read back from a cursor: an int in the range of stored ids."""
    if type(value) is not int or not is_storable_id(value):
        raise _invalid()
    return value


def cursor_time(value: Any) -> datetime:
    """A timestamp read back from a cursor: ISO 8601 with a time zone."""
    if not isinstance(value, str):
        raise _invalid()
    try:
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise _invalid()
        return at.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise _invalid() from exc


def decode_id_cursor(cursor: str) -> int:
    """The cursor of a list ordered by id alone."""
    (after_id,) = decode_cursor(cursor, 1)
    return cursor_id(after_id)
