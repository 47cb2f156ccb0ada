"""Cursor pages: a cursor is an opaque position that reads back as the row it names,
a made-up cursor is the caller's error, and a page knows whether another follows."""

from __future__ import annotations

from typing import Any

import pytest
from calendence.errors import InvalidInput
from calendence.pages import (
    MAX_PAGE_SIZE,
    PageRequest,
    decode_cursor,
    encode_cursor,
    filtered_page,
    oldest_first_page,
    page_size,
)
from pydantic import BaseModel, Field


def seqs(*numbers: int) -> list[dict[str, int]]:
    return [{"seq": n} for n in numbers]


@pytest.mark.parametrize("seq", [0, 1, 41, 2**63 - 1])
def test_a_cursor_reads_back_as_the_position_it_was_made_from(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


def test_a_cursor_does_not_show_the_position_as_plain_digits() -> None:
    assert "41" not in encode_cursor(41)


def test_no_cursor_means_the_first_page() -> None:
    assert decode_cursor("") is None


@pytest.mark.parametrize("cursor", ["not a cursor", "%%%", "_w", encode_cursor(-1)])
def test_a_cursor_this_api_never_gave_out_is_refused_by_field(cursor: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_cursor(cursor)
    assert refused.value.fields == {"cursor": "invalid cursor"}


def test_a_cursor_beyond_the_largest_position_is_refused() -> None:
    with pytest.raises(InvalidInput):
        decode_cursor(encode_cursor(2**63))


@pytest.mark.parametrize(("asked", "given"), [(0, 20), (1, 1), (100, 100), (5000, MAX_PAGE_SIZE)])
def test_page_size_defaults_to_twenty_and_stops_at_the_maximum(asked: int, given: int) -> None:
    assert page_size(asked) == given


def test_the_first_page_of_an_oldest_first_list_starts_after_no_row() -> None:
    page = PageRequest.of("", 10)
    assert (page.position, page.after) == (None, 0)


def test_a_later_page_starts_after_the_row_its_cursor_names() -> None:
    page = PageRequest.of(encode_cursor(57), 10)
    assert (page.position, page.after) == (57, 57)


def test_storage_is_asked_for_one_row_beyond_the_page() -> None:
    assert PageRequest.of("", 10).fetch == 11


def test_a_look_ahead_row_means_a_next_page_starting_after_the_last_shown() -> None:
    shown, next_cursor = PageRequest.of("", 2).cut(seqs(3, 5, 8))
    assert shown == seqs(3, 5)
    assert decode_cursor(next_cursor) == 5


def test_without_a_look_ahead_row_this_is_the_last_page() -> None:
    shown, next_cursor = PageRequest.of("", 2).cut(seqs(3, 5))
    assert (shown, next_cursor) == (seqs(3, 5), "")


def test_an_empty_list_is_one_empty_last_page() -> None:
    assert PageRequest.of("", 20).cut(seqs()) == ([], "")


def test_a_newest_first_list_pages_backwards_through_the_cursor() -> None:
    newest, cursor = PageRequest.of("", 2).cut(seqs(9, 7, 4))
    assert newest == seqs(9, 7)
    assert PageRequest.of(cursor, 2).position == 7


async def test_an_oldest_first_page_reads_after_the_cursor_and_one_row_beyond() -> None:
    asked: list[tuple[int, int]] = []

    async def rows_after(seq: int, count: int) -> list[dict[str, int]]:
        asked.append((seq, count))
        return seqs(58, 60, 61)

    shown, next_cursor = await oldest_first_page(encode_cursor(57), 2, rows_after)
    assert asked == [(57, 3)]
    assert shown == seqs(58, 60)
    assert decode_cursor(next_cursor) == 60


class Window(BaseModel):
    starts: int | None = Field(default=None, alias="from")


async def test_a_filtered_page_hands_the_filters_on_by_their_json_names() -> None:
    asked: list[dict[str, Any]] = []

    async def rows_after(filters: dict[str, Any], seq: int, count: int) -> list[dict[str, int]]:
        asked.append(filters)
        return []

    assert await filtered_page(Window, b'{"from": 3}', "", 5, rows_after) == ([], "")
    assert await filtered_page(Window, b"", "", 5, rows_after) == ([], "")
    assert asked == [{"from": 3}, {"from": None}]


async def test_a_filter_document_with_a_bad_field_is_refused_by_field() -> None:
    async def rows_after(filters: dict[str, Any], seq: int, count: int) -> list[dict[str, int]]:
        pytest.fail("a refused filter document reads no rows")

    with pytest.raises(InvalidInput) as refused:
        await filtered_page(Window, b'{"from": "soon"}', "", 5, rows_after)
    assert "from" in refused.value.fields
