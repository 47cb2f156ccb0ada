"""Holds and availability, as the Bookings API page defines them."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from calendence.schemas.common import Answer, Instant, Moment, Schema

# The ids the examples below use (the Bookings page writes "uuid" for each).
EXAMPLE_SERVICE_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
EXAMPLE_LOCATION_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
EXAMPLE_HOLD_ID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
EXAMPLE_STAFF_ID = "c56a4180-65aa-42ec-a945-5fd21dec0538"


class HoldRequest(Schema):
    """What to hold: one start time of a service at a location."""

    service_id: UUID = Field(description="The service being booked")
    location_id: UUID = Field(description="The location")
    staff_id: UUID | None = Field(
        default=None,
        description="Preferred staff member; omitted, one who is free is assigned",
    )
    starts_at: Moment = Field(
        description="Slot start time (ISO 8601 with an offset, must be in the future, on a "
        "5-minute boundary)"
    )


class AvailabilityQuery(Schema):
    service_id: UUID = Field(description="The service to be booked")
    location_id: UUID = Field(description="Where")
    staff_id: UUID | None = Field(default=None, description="Only this staff member's times")
    # `from` is a Python keyword; the query parameter keeps the API's name.
    from_: Moment = Field(alias="from", description="Start of the range (ISO 8601 with an offset)")
    to: Moment = Field(description="End of the range; at most 31 days after `from`")


class Hold(Answer):
    """A held slot. Nobody else can hold or book it until `expires_at` (10 minutes after
    it was made); a booking made from it (`POST /api/v1/bookings`) consumes it."""

    __omittable__: ClassVar[frozenset[str]] = frozenset({"staff_id"})

    hold_id: UUID
    service_id: UUID
    location_id: UUID
    starts_at: Instant
    ends_at: Instant = Field(description="starts_at plus the service's duration")
    expires_at: Instant = Field(description="When the hold lapses unless booked")
    staff_id: UUID | None = Field(
        default=None, description="The staff member held; absent for services without staff"
    )


class Slot(Answer):
    starts_at: datetime = Field(description="In the location's time zone")
    ends_at: datetime
    staff_ids: list[UUID] = Field(description="Who is free then; empty for services without staff")


class Availability(Answer):
    """Bookable start times, net of bookings and live holds."""

    object: Literal["availability"]
    service_id: UUID
    location_id: UUID
    timezone: str = Field(description="The location's IANA time zone", examples=["Europe/London"])
    slots: list[Slot]


# The Bookings page's "Hold a Slot" example, request and response (201).
HOLD_REQUEST_EXAMPLE = {
    "service_id": EXAMPLE_SERVICE_ID,
    "location_id": EXAMPLE_LOCATION_ID,
    "starts_at": "2026-03-25T14:00:00+00:00",
}
HOLD_EXAMPLE = {
    "hold_id": EXAMPLE_HOLD_ID,
    "service_id": EXAMPLE_SERVICE_ID,
    "location_id": EXAMPLE_LOCATION_ID,
    "starts_at": "2026-03-25T14:00:00+00:00",
    "ends_at": "2026-03-25T14:30:00+00:00",
    "expires_at": "2026-03-25T13:10:00+00:00",
}
