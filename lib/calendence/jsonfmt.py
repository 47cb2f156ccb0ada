"""JSON encoding for documents built from database rows."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson


def _default(value: Any) -> Any:
    # asyncpg's own UUID type is not the stdlib one orjson knows.
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(document: Any) -> bytes:
    return orjson.dumps(document, default=_default)
