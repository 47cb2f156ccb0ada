"""Ids read off the wire: a malformed id in a field is the caller's error named by that
field; a malformed id of something that must exist is answered as not found."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from calendence.errors import InvalidInput, NotFound
from calendence.ids import existing_id, is_uuid, optional_uuid, parse_uuid

AN_ID = "0b0f3c4e-8d2a-4f3b-9c1d-2e5f6a7b8c9d"


def test_a_well_formed_id_reads_as_that_uuid() -> None:
    assert parse_uuid(AN_ID, "service_id") == UUID(AN_ID)


def test_a_malformed_id_is_refused_by_its_field() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_uuid("not-an-id", "service_id")
    assert refused.value.fields == {"service_id": "must be a UUID"}
    assert refused.value.detail == "service_id is not a UUID"


def test_a_refusal_can_say_in_its_own_words_what_the_id_was() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_uuid("x", "X-Business-Id", detail="the X-Business-Id header is not a business id")
    assert refused.value.detail == "the X-Business-Id header is not a business id"
    assert refused.value.fields == {"X-Business-Id": "must be a UUID"}


def test_an_empty_optional_id_means_none_given() -> None:
    assert optional_uuid("", "staff_id") is None


def test_a_malformed_optional_id_is_still_refused() -> None:
    with pytest.raises(InvalidInput):
        optional_uuid("12", "staff_id")


def test_a_malformed_id_of_something_that_must_exist_is_not_found() -> None:
    with pytest.raises(NotFound) as missing:
        existing_id("../etc/passwd", "no such hold")
    assert missing.value.detail == "no such hold"


def test_an_existing_id_reads_as_that_uuid() -> None:
    made = uuid4()
    assert existing_id(str(made), "no such hold") == made


@pytest.mark.parametrize(("text", "answer"), [(AN_ID, True), ("", False), ("g" * 32, False)])
def test_is_uuid_tells_ids_from_anything_else(text: str, answer: bool) -> None:
    assert is_uuid(text) is answer
