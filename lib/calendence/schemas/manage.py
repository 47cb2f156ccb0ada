"""A client managing their own booking through its manage link, and calendar feeds."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from calendence.schemas.bookings import (
    Actor,
    BookedClient,
    BookingStatus,
    CancellationReason,
)
from calendence.schemas.common import Answer, Moment, Schema


class ManageCancelRequest(Schema):
    cancellation_reason: CancellationReason | None = Field(
        default=None,
        description="Why, in the client's words (shown to the business; max 500 chars)",
    )


class ManageRescheduleRequest(Schema):
    starts_at: Moment = Field(
        description="The new start: one of `GET /api/v1/manage/{token}/availability`'s times"
    )


class ManageAvailabilityQuery(Schema):
    from_: Moment | None = Field(default=None, alias="from", description="Default: now")
    to: Moment | None = Field(default=None, description="Default: 14 days after `from`")


class ManagedService(Answer):
    name: str
    duration_minutes: int
    price_amount: int = Field(description="In the currency's minor unit")
    currency: str


class ManagedLocation(Answer):
    name: str
    address: str | None
    timezone: str = Field(description="IANA time zone the appointment is shown in")


class ManagedStaff(Answer):
    name: str


class ManagedPayment(Answer):
    status: str
    amount: int
    currency: str


class ClientRules(Answer):
    client_cancel_cutoff_minutes: int = Field(
        description="A client may cancel until this many minutes before the start"
    )
    client_reschedule_cutoff_minutes: int = Field(
        description="A client may move the booking until this many minutes before the start"
    )


class ManagedBooking(Answer):
    """The booking as its client sees it through the manage link: no business-internal
    details (notes, custom fields, staff contacts, ids of other things)."""

    object: Literal["managed_booking"]
    id: UUID
    status: BookingStatus
    starts_at: datetime
    ends_at: datetime
    service: ManagedService
    location: ManagedLocation
    staff: ManagedStaff | None
    client: BookedClient
    payment: ManagedPayment | None
    redirect_url: str | None = Field(description="Where to pay the deposit, while it is due")
    cancelled_at: datetime | None
    cancelled_by: Actor | None
    cancellation_reason: str | None
    manage_url: str | None = Field(description="This link; null once it stops working")
    calendar_url: str | None = Field(description="The booking as an iCalendar file")
    can_cancel: bool
    cancel_until: datetime | None
    can_reschedule: bool
    reschedule_until: datetime | None
    rules: ClientRules


class CalendarFeed(Answer):
    """A staff member's secret calendar feed (subscribe to `url` in a calendar app)."""

    object: Literal["calendar_feed"]
    staff_id: UUID
    url: str = Field(description="Secret: shown this once; making the feed again replaces it")
    created_at: datetime
