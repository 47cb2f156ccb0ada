"""Bookings, as the Bookings API page defines them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

import phonenumbers
from pydantic import AfterValidator, Field, model_validator

from calendence.schemas.common import (
    ANSWER_CONFIG,
    Answer,
    Email,
    FieldError,
    Moment,
    Schema,
    page_of,
)
from calendence.schemas.holds import (
    EXAMPLE_HOLD_ID,
    EXAMPLE_LOCATION_ID,
    EXAMPLE_SERVICE_ID,
    EXAMPLE_STAFF_ID,
)
from calendence.schemas.scheduling import BookingPolicy

MAX_NOTES = 1000
MAX_CANCELLATION_REASON = 500


# E.164's shape: "+", then a country code and number of at most 15 digits in all.
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"


def _e164(value: str) -> str:
    """Beyond the shape (the field's pattern): a number its country's plan allows."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        number = None
    if (
        number is None
        or not phonenumbers.is_possible_number(number)
        or value != phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    ):
        raise ValueError("not a number its country's numbering plan allows")
    return value


Phone = Annotated[
    str,
    Field(
        pattern=E164_PATTERN,
        description="E.164 (+15551234567), a number its country's numbering plan allows",
        examples=["+15551234567"],
    ),
    AfterValidator(_e164),
]
Notes = Annotated[str, Field(max_length=MAX_NOTES)]
CancellationReason = Annotated[
    str, Field(max_length=MAX_CANCELLATION_REASON, description="Why it is cancelled")
]
PersonName = Annotated[str, Field(min_length=1, max_length=200)]


class BookingStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


class Actor(StrEnum):
    """Who changed a booking: the business (its keys), the client (the manage link), or
    the platform itself (an unpaid deposit's checkout expired)."""

    BUSINESS = "business"
    CLIENT = "client"
    SYSTEM = "system"


LIVE_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.IN_PROGRESS)


class Client(Schema):
    first_name: PersonName = Field(description="Client's first name")
    last_name: PersonName = Field(description="Client's last name")
    email: Email = Field(description="Client's email")
    phone: Phone | None = Field(
        default=None, description="Client's phone number, E.164 (+15551234567)"
    )


class CustomFieldValue(Schema):
    key: Annotated[str, Field(min_length=1, max_length=64)]
    value: bool | int | float | str


class BookingRequest(Schema):
    """A booking made from a live hold; the hold is consumed."""

    hold_id: UUID = Field(description="The active hold to convert")
    client: Client
    custom_field_values: list[CustomFieldValue] = Field(
        default=[], description="Custom field responses, one per field key"
    )
    notes: Notes | None = Field(default=None, description="Client notes (max 1000 chars)")


class BookingPatch(Schema):
    """Reschedule, move the status along, or edit the notes (business and hub keys)."""

    starts_at: Moment | None = Field(default=None, description="Reschedule start time")
    ends_at: Moment | None = Field(
        default=None, description="Reschedule end time, after starts_at (sent or stored)"
    )
    status: BookingStatus | None = Field(
        default=None,
        description="pending -> confirmed -> in_progress -> completed; any live status -> "
        "cancelled; pending or confirmed -> no_show once starts_at has passed. Anything "
        "else is 409.",
    )
    notes: Notes | None = Field(default=None, description="Updated notes")
    cancellation_reason: CancellationReason | None = Field(
        default=None, description='Only with "status": "cancelled" (max 500 chars)'
    )

    @model_validator(mode="after")
    def _reason_only_when_cancelling(self) -> BookingPatch:
        if self.cancellation_reason is not None and self.status is not BookingStatus.CANCELLED:
            raise FieldError("cancellation_reason", 'only with "status": "cancelled"')
        return self


class Cancellation(Schema):
    """The optional body of DELETE /api/v1/bookings/{id}."""

    cancellation_reason: CancellationReason | None = None


class BookingFilters(Schema):
    status: BookingStatus | None = None
    location_id: UUID | None = None
    staff_id: UUID | None = None
    service_id: UUID | None = None
    client_email: Annotated[str, Field(max_length=320)] | None = None
    # Bookings starting in [from, to).
    from_: Moment | None = Field(default=None, alias="from")
    to: Moment | None = None


# --- answers ---------------------------------------------------------------------------


class BookedService(Answer):
    id: UUID
    name: str
    duration_minutes: int
    price_amount: int = Field(description="In the currency's minor unit")
    currency: str
    deposit_amount: int


class BookedLocation(Answer):
    id: UUID
    name: str
    address: str | None
    timezone: str


class BookedStaff(Answer):
    id: UUID
    name: str
    email: str | None


class BookedClient(Client):
    model_config = ANSWER_CONFIG


class CustomFieldAnswer(Answer):
    key: str
    value: bool | int | float | str


class PaymentStatus(StrEnum):
    REQUIRES_PAYMENT = "requires_payment"
    PAID = "paid"
    EXPIRED = "expired"


class Payment(Answer):
    """The deposit, paid through Stripe Checkout."""

    status: PaymentStatus
    amount: int = Field(description="In the currency's minor unit")
    currency: str
    checkout_session_id: str
    expires_at: datetime = Field(description="When the Checkout Session stops taking payment")


class Booking(Answer):
    """A booking with its service, location, staff member and client."""

    object: Literal["booking"]
    id: UUID
    business_id: UUID
    status: BookingStatus
    starts_at: datetime
    ends_at: datetime
    service: BookedService
    location: BookedLocation
    staff: BookedStaff | None = Field(description="null for services performed without staff")
    client: BookedClient
    custom_field_values: list[CustomFieldAnswer]
    notes: str | None
    payment: Payment | None = Field(description="The deposit; null when none is due")
    redirect_url: str | None = Field(
        description="Stripe Checkout, where the client pays the deposit; set while it is unpaid"
    )
    hold_id: UUID | None = Field(description="The hold the booking was made from")
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None
    cancellation_reason: str | None = Field(description="Why it was cancelled, if given")
    cancelled_by: Actor | None = Field(
        description="Who cancelled it: `business` (a business or hub key), `client` (the "
        "manage link) or `system` (an unpaid deposit's checkout expired)"
    )
    policy: BookingPolicy | None = Field(
        description="The booking policy in force when it was made; later changes leave it"
    )
    version: int = Field(description="Bumped on every change; the ETag is this number quoted")
    manage_url: str | None = Field(
        description="The client's own page for this booking (view, reschedule, cancel; "
        "`GET /api/v1/manage/{token}` for widgets). Unguessable, for this booking only; "
        "null once the booking is cancelled, completed or over"
    )


BookingList = page_of(Booking, "BookingList")

EXAMPLE_BOOKING_ID = "9b2f6c1e-0d4a-4c7e-8f3b-2a5d6e7f8a9b"
EXAMPLE_BUSINESS_ID = "5f0c2a7e-3b1d-4e8f-9a6c-7d2e1f0b3c4a"

# The Bookings page's "Create a Booking" example request.
BOOKING_REQUEST_EXAMPLE: dict[str, Any] = {
    "hold_id": EXAMPLE_HOLD_ID,
    "client": {
        "first_name": "Jane",
        "last_name": "Doe",
        "email": "jane@example.com",
        "phone": "+15551234567",
    },
    "notes": "Please use the side entrance",
}
# Its answer (201): "the full booking resource with service, location, client, and staff".
BOOKING_EXAMPLE: dict[str, Any] = {
    "object": "booking",
    "id": EXAMPLE_BOOKING_ID,
    "business_id": EXAMPLE_BUSINESS_ID,
    "status": "confirmed",
    "starts_at": "2026-03-25T14:00:00+00:00",
    "ends_at": "2026-03-25T14:30:00+00:00",
    "service": {
        "id": EXAMPLE_SERVICE_ID,
        "name": "Haircut",
        "duration_minutes": 30,
        "price_amount": 3500,
        "currency": "GBP",
        "deposit_amount": 0,
    },
    "location": {
        "id": EXAMPLE_LOCATION_ID,
        "name": "Main Street",
        "address": "1 Main Street, London",
        "timezone": "Europe/London",
    },
    "staff": {"id": EXAMPLE_STAFF_ID, "name": "Alex Morgan", "email": "alex@example.com"},
    "client": BOOKING_REQUEST_EXAMPLE["client"],
    "custom_field_values": [],
    "notes": "Please use the side entrance",
    "payment": None,
    "redirect_url": None,
    "hold_id": EXAMPLE_HOLD_ID,
    "created_at": "2026-03-25T13:02:11+00:00",
    "updated_at": "2026-03-25T13:02:11+00:00",
    "cancelled_at": None,
    "cancellation_reason": None,
    "cancelled_by": None,
    "policy": {
        "min_notice_minutes": 120,
        "max_advance_days": 90,
        "slot_step_minutes": 15,
        "client_cancel_cutoff_minutes": 1440,
        "client_reschedule_cutoff_minutes": 1440,
    },
    "version": 1,
    "manage_url": "https://calendence.com/manage/AAGbL2weDUpMfo87Kl1uf4qbdrHqWN3A0ZWOkMb2TgXr",
}
# The same booking for a service with a deposit: pending until paid at `redirect_url`.
DEPOSIT_BOOKING_EXAMPLE: dict[str, Any] = BOOKING_EXAMPLE | {
    "status": "pending",
    "service": BOOKING_EXAMPLE["service"] | {"price_amount": 12000, "deposit_amount": 3000},
    "payment": {
        "status": "requires_payment",
        "amount": 3000,
        "currency": "GBP",
        "checkout_session_id": "cs_test_a1b2c3d4e5f6",
        "expires_at": "2026-03-25T13:32:11+00:00",
    },
    "redirect_url": "https://checkout.stripe.com/c/pay/cs_test_a1b2c3d4e5f6",
}
