"""The base of every request body: allow-listed fields, and only values a database keeps.

A body may carry only the fields its model declares: anything else (`workspace_id`, `id`,
`role` where it is not a field...) is refused with 422, never silently written or ignored.
Text must be storable on every backend: PostgreSQL refuses NUL characters and neither
backend can encode a lone UTF-16 surrogate; JSON documents must not hold NaN or Infinity
(Python's JSON parser accepts them, PostgreSQL and the JSON standard do not).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


def unstorable_reason(value: Any, path: str = "") -> str | None:
    """Why `value` (a str, number or JSON document) cannot be stored, or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{path or 'text'} contains a NUL character (\\u0000)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path or 'text'} contains a lone surrogate, which is not valid Unicode"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path or 'number'} is {value}; JSON numbers must be finite"
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            reason = unstorable_reason(key, f"the key {where!r}") or unstorable_reason(item, where)
            if reason:
                return reason
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            reason = unstorable_reason(item, f"{path}[{index}]")
            if reason:
                return reason
    return None


class InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # Nested InputModels checked their own fields already.
        if isinstance(value, str | float | dict | list):
            reason = unstorable_reason(value)
            if reason:
                raise ValueError(reason)
        return value
