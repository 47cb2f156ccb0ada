"""Reading ids off the wire, one way everywhere.

A malformed id in a request body or field is the caller's error, named by field
(`parse_uuid`); a malformed id in a path names nothing, so it is answered like a missing
one (`existing_id`).
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from calendence.errors import InvalidInput, NotFound


def is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def parse_uuid(value: str, field: str, *, detail: str | None = None) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInput(
            detail or f"{field} is not a UUID", fields={field: "must be a UUID"}
        ) from None


def optional_uuid(value: str, field: str) -> UUID | None:
    return parse_uuid(value, field) if value else None


def existing_id(value: str, missing: str) -> UUID:
    """The id of something that must exist; a malformed one is NotFound(`missing`)."""
    try:
        return UUID(value)
    except ValueError:
        raise NotFound(missing) from None


class NamesBooking(Protocol):
    """A request naming one booking of one business (`GetBookingRequest` and its kin)."""

    @property
    def business_id(self) -> str: ...

    @property
    def booking_id(self) -> str: ...


def booking_ids(request: NamesBooking) -> tuple[UUID, UUID]:
    """(business id, booking id) of the booking a request names; a malformed id is
    InvalidInput naming its field."""
    return (
        parse_uuid(request.business_id, "business_id"),
        parse_uuid(request.booking_id, "booking_id"),
    )
