"""Cursor pages over a table's `seq` column: the cursor is an opaque position."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from calendence.errors import InvalidInput

MAX_PAGE = 100
# seq is a PostgreSQL bigint; a cursor beyond it names no position.
_MAX_SEQ = 2**63 - 1


def page_size(limit: int) -> int:
    return max(1, min(limit or 20, MAX_PAGE))


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """None for the first page, else the seq the previous page ended on."""
    if not cursor:
        return None
    try:
        seq = int(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
    except ValueError:
        seq = -1
    if not 0 <= seq <= _MAX_SEQ:
        raise InvalidInput(
            "the cursor is not one this API gave out", fields={"cursor": "invalid cursor"}
        )
    return seq


def next_cursor(rows: Sequence[Mapping[str, Any]], limit: int) -> str:
    """Rows were fetched with limit + 1: one more means there is a next page."""
    return encode_cursor(rows[limit - 1]["seq"]) if len(rows) > limit else ""
