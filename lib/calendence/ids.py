"""Reading ids off the wire: a malformed id is the caller's error, named by field."""

from __future__ import annotations

from uuid import UUID

from calendence.errors import InvalidInput


def parse_uuid(value: str, field: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInput(f"{field} is not a UUID", fields={field: "must be a UUID"}) from None


def optional_uuid(value: str, field: str) -> UUID | None:
    return parse_uuid(value, field) if value else None
