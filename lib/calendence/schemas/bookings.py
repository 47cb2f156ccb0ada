"""Bookings, as the Bookings API page defines them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

import phonenumbers
from pydantic import AfterValidator, AwareDatetime, EmailStr, Field

from calendence.schemas.common import Schema

MAX_NOTES = 1000


def _e164(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("must be a phone number in E.164 form, such as +15551234567") from None
    if not phonenumbers.is_possible_number(number) or value != phonenumbers.format_number(
        number, phonenumbers.PhoneNumberFormat.E164
    ):
        raise ValueError("must be a phone number in E.164 form, such as +15551234567")
    return value


Phone = Annotated[str, AfterValidator(_e164)]
Notes = Annotated[str, Field(max_length=MAX_NOTES)]
PersonName = Annotated[str, Field(min_length=1, max_length=200)]


class BookingStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


LIVE_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.IN_PROGRESS)


class Client(Schema):
    first_name: PersonName
    last_name: PersonName
    email: EmailStr
    phone: Phone | None = None


class CustomFieldValue(Schema):
    key: Annotated[str, Field(min_length=1, max_length=64)]
    value: bool | int | float | str


class BookingRequest(Schema):
    hold_id: UUID
    client: Client
    custom_field_values: list[CustomFieldValue] = []
    notes: Notes | None = None


class BookingPatch(Schema):
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    status: BookingStatus | None = None
    notes: Notes | None = None


class BookingFilters(Schema):
    status: BookingStatus | None = None
    location_id: UUID | None = None
    staff_id: UUID | None = None
    service_id: UUID | None = None
    client_email: Annotated[str, Field(max_length=320)] | None = None
    # Bookings starting in [from, to).
    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None
