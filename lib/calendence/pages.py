"""Cursor pages over a table's `seq` column, the same way in every service.

A cursor is an opaque position: the seq the previous page ended on. Each list fetches
one row more than it shows; that look-ahead row says whether another page follows.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel

from calendence import jsonfmt
from calendence.errors import InvalidInput
from calendence.ids import parse_uuid
from calendence.schemas.common import parse_json

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# seq is a PostgreSQL bigint; a cursor beyond it names no position.
_MAX_SEQ = 2**63 - 1

Row = TypeVar("Row", bound=Mapping[str, Any])
PageMessage = TypeVar("PageMessage")


def page_size(limit: int) -> int:
    """The rows a page shows: the default when none was asked, never above the maximum."""
    return max(1, min(limit or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """None for the first page, else the seq the previous page ended on."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        seq = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        seq = -1
    if not 0 <= seq <= _MAX_SEQ:
        raise InvalidInput(
            "the cursor is not one this API gave out", fields={"cursor": "invalid cursor"}
        )
    return seq


@dataclass(frozen=True)
class PageRequest:
    """One page asked for: how many rows, and from where."""

    size: int
    # The seq the previous page ended on; None on the first page.
    position: int | None

    @classmethod
    def of(cls, cursor: str, limit: int) -> PageRequest:
        return cls(page_size(limit), decode_cursor(cursor))

    @property
    def after(self) -> int:
        """For oldest-first lists: show rows whose seq is above this (seqs start at 1)."""
        return self.position or 0

    @property
    def fetch(self) -> int:
        """Rows to ask storage for: the page and one look-ahead row."""
        return self.size + 1

    def cut(self, rows: Sequence[Row]) -> tuple[Sequence[Row], str]:
        """The rows to show, and the next page's cursor ('' on the last page)."""
        if len(rows) > self.size:
            return rows[: self.size], encode_cursor(rows[self.size - 1]["seq"])
        return rows, ""


async def oldest_first_page(
    cursor: str, limit: int, rows_after: Callable[[int, int], Awaitable[Sequence[Row]]]
) -> tuple[Sequence[Row], str]:
    """The page of an oldest-first list that `cursor` and `limit` ask for, and the next
    page's cursor ('' on the last page). `rows_after(seq, count)` reads at most `count`
    rows whose seq is above `seq`, in seq order."""
    page = PageRequest.of(cursor, limit)
    return page.cut(await rows_after(page.after, page.fetch))


async def filtered_page(
    filters: type[BaseModel],
    filters_json: bytes,
    cursor: str,
    limit: int,
    rows_after: Callable[[dict[str, Any], int, int], Awaitable[Sequence[Row]]],
) -> tuple[Sequence[Row], str]:
    """`oldest_first_page` of the rows a filter document picks: `filters_json` (empty for
    none) is checked against `filters` and handed to `rows_after` by its JSON names."""
    matching = parse_json(filters, filters_json or b"{}").model_dump(by_alias=True)
    return await oldest_first_page(cursor, limit, functools.partial(rows_after, matching))


def page_message(
    message: Callable[..., PageMessage], items: Iterable[Any], next_cursor: str
) -> PageMessage:
    """A service's page answer (a message with `items_json` and `next_cursor`, such as
    `BookingPage`): each item as a JSON document."""
    return message(items_json=[jsonfmt.dumps(item) for item in items], next_cursor=next_cursor)


class FilteredPageQuery(Protocol):
    """A request for one page of a business's filtered list (`ListBookingsRequest`,
    `ListTimeOffRequest`)."""

    @property
    def business_id(self) -> str: ...

    @property
    def filters_json(self) -> bytes: ...

    @property
    def cursor(self) -> str: ...

    @property
    def limit(self) -> int: ...


async def filtered_page_message(
    message: Callable[..., PageMessage],
    list_page: Callable[[UUID, bytes, str, int], Awaitable[tuple[Iterable[Any], str]]],
    query: FilteredPageQuery,
) -> PageMessage:
    """The page of a business's filtered list that `query` asks for, read by
    `list_page(business_id, filters_json, cursor, limit)`, as the service's page answer."""
    business_id = parse_uuid(query.business_id, "business_id")
    page = await list_page(business_id, query.filters_json, query.cursor, query.limit)
    return page_message(message, *page)
