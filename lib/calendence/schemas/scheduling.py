"""Scheduling rules beyond weekly hours: time off, closures and the booking policy."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, model_validator

from calendence.schemas.common import (
    ANSWER_CONFIG,
    WHOLE_NUMBER,
    Answer,
    FieldError,
    Moment,
    Schema,
    page_of,
)

# Holds claim time in 5-minute granules; availability steps must land on them.
GRANULE_MINUTES = 5
MAX_TIME_OFF_DAYS = 366
MAX_REASON = 500

_NOTICE = "Holds must start at least this many minutes from now"
_ADVANCE = "Holds may start at most this many days from now"
_STEP = "How far apart availability lists start times (a multiple of 5)"
_CANCEL = "Client self-service may cancel until this many minutes before the start"
_RESCHEDULE = "Client self-service may reschedule until this many minutes before the start"

NoticeMinutes = Annotated[int, Field(ge=0, le=366 * 24 * 60, description=_NOTICE), WHOLE_NUMBER]
AdvanceDays = Annotated[int, Field(ge=1, le=3650, description=_ADVANCE), WHOLE_NUMBER]
StepMinutes = Annotated[
    int,
    Field(ge=GRANULE_MINUTES, le=24 * 60, multiple_of=GRANULE_MINUTES, description=_STEP),
    WHOLE_NUMBER,
]
CutoffMinutes = Annotated[int, Field(ge=0, le=366 * 24 * 60), WHOLE_NUMBER]


class BookingPolicy(Schema):
    """When a business takes bookings; every field has a default."""

    min_notice_minutes: NoticeMinutes = 0
    max_advance_days: AdvanceDays = 365
    slot_step_minutes: StepMinutes = 15
    client_cancel_cutoff_minutes: CutoffMinutes = Field(default=0, description=_CANCEL)
    client_reschedule_cutoff_minutes: CutoffMinutes = Field(default=0, description=_RESCHEDULE)


class BookingPolicyOverride(Schema):
    """A service's own rules: each field set here replaces the business's."""

    min_notice_minutes: NoticeMinutes | None = None
    max_advance_days: AdvanceDays | None = None
    slot_step_minutes: StepMinutes | None = None
    client_cancel_cutoff_minutes: CutoffMinutes | None = Field(default=None, description=_CANCEL)
    client_reschedule_cutoff_minutes: CutoffMinutes | None = Field(
        default=None, description=_RESCHEDULE
    )


DEFAULT_POLICY: dict[str, int] = BookingPolicy().model_dump()


def effective_policy(
    business_policy: dict[str, Any] | None, service_policy: dict[str, Any] | None
) -> dict[str, int]:
    """The rules in force for one service: defaults, then the business's, then the
    service's own (fields it leaves null follow the business)."""
    merged = dict(DEFAULT_POLICY)
    for layer in (business_policy or {}, service_policy or {}):
        merged |= {k: v for k, v in layer.items() if k in DEFAULT_POLICY and v is not None}
    return merged


Reason = Annotated[str, Field(max_length=MAX_REASON)]


class TimeOffFields(Schema):
    """A staff member away, or a location closed, for [starts_at, ends_at)."""

    staff_id: UUID | None = Field(default=None, description="Who is away (or location_id)")
    location_id: UUID | None = Field(default=None, description="Which location is closed")
    starts_at: Moment
    ends_at: Moment
    reason: Reason | None = None

    @model_validator(mode="after")
    def _one_subject_and_a_sane_span(self) -> TimeOffFields:
        if (self.staff_id is None) == (self.location_id is None):
            raise FieldError("staff_id", "give exactly one of staff_id and location_id")
        if self.ends_at <= self.starts_at:
            raise FieldError("ends_at", "must be after starts_at")
        if self.ends_at - self.starts_at > timedelta(days=MAX_TIME_OFF_DAYS):
            raise FieldError("ends_at", f"at most {MAX_TIME_OFF_DAYS} days after starts_at")
        return self


class TimeOffFilters(Schema):
    staff_id: UUID | None = None
    location_id: UUID | None = None
    # Time off overlapping [from, to).
    from_: Moment | None = Field(default=None, alias="from")
    to: Moment | None = None


class TimeOff(Answer):
    object: Literal["time_off"]
    id: UUID
    staff_id: UUID | None
    location_id: UUID | None
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    created_at: datetime


class TimeOffCreated(TimeOff):
    model_config = ANSWER_CONFIG

    conflicting_booking_ids: list[UUID] = Field(
        description="Live bookings inside the time off: nothing moves or cancels them"
    )


TimeOffList = page_of(TimeOff, "TimeOffList")
