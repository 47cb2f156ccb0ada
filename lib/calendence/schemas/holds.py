"""Holds and availability, as the Bookings API page defines them."""

from __future__ import annotations

from uuid import UUID

from pydantic import AwareDatetime, Field

from calendence.schemas.common import Schema


class HoldRequest(Schema):
    service_id: UUID
    location_id: UUID
    staff_id: UUID | None = None
    starts_at: AwareDatetime


class AvailabilityQuery(Schema):
    service_id: UUID
    location_id: UUID
    staff_id: UUID | None = None
    # `from` is a Python keyword; the query parameter keeps the API's name.
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime
