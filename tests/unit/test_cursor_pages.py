"""Cursor pages: a cursor is an opaque position that reads back as the row it names,
a made-up cursor is the caller's error, and a page knows whether another follows."""

from __future__ import annotations

import pytest
from calendence.errors import InvalidInput
from notify_service.pages import MAX_PAGE, decode_cursor, encode_cursor, next_cursor, page_size


@pytest.mark.parametrize("seq", [0, 1, 41, 2**63 - 1])
def test_a_cursor_reads_back_as_the_position_it_was_made_from(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


def test_a_cursor_does_not_show_the_position_as_plain_digits() -> None:
    assert "41" not in encode_cursor(41)


def test_no_cursor_means_the_first_page() -> None:
    assert decode_cursor("") is None


@pytest.mark.parametrize("cursor", ["not a cursor", "%%%", encode_cursor(-1)])
def test_a_cursor_this_api_never_gave_out_is_refused_by_field(cursor: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_cursor(cursor)
    assert refused.value.fields == {"cursor": "invalid cursor"}


def test_a_cursor_beyond_the_largest_position_is_refused() -> None:
    with pytest.raises(InvalidInput):
        decode_cursor(encode_cursor(2**63))


@pytest.mark.parametrize(("asked", "given"), [(0, 20), (1, 1), (100, 100), (5000, MAX_PAGE)])
def test_page_size_defaults_to_twenty_and_stops_at_the_maximum(asked: int, given: int) -> None:
    assert page_size(asked) == given


def test_a_look_ahead_row_means_a_next_page_starting_after_the_last_shown() -> None:
    rows = [{"seq": s} for s in (3, 5, 8)]
    assert decode_cursor(next_cursor(rows, 2)) == 5


def test_without_a_look_ahead_row_this_is_the_last_page() -> None:
    rows = [{"seq": s} for s in (3, 5)]
    assert next_cursor(rows, 2) == ""
