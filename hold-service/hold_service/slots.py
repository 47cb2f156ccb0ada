"""Which resource a requested slot needs, and whether the catalogue allows it.

Pure functions over a `BusinessCatalogue`: no Redis, no I/O. The hold endpoint
(`check_slot`) and the availability listing (`bookable_plans`) both decide through
`Offer.plan` and `policy_errors`, so every time listed as available is one the hold
endpoint accepts, and the other way round. The rules: the location's opening hours,
minus its closures; a staff member's own hours, minus their time off; the booking
policy's minimum notice and maximum advance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from uuid import UUID
from zoneinfo import ZoneInfo

from calendence.errors import InvalidInput
from calendence.schemas.scheduling import GRANULE_MINUTES

from hold_service.catalogue_cache import (
    BusinessCatalogue,
    Location,
    Policy,
    Service,
    Spans,
    StaffMember,
    Week,
)

MAX_AVAILABILITY_DAYS = 31


@dataclass(frozen=True)
class SlotPlan:
    """What a hold on one slot must claim."""

    service: Service
    location: Location
    starts_at: datetime
    ends_at: datetime
    # ends_at plus the service buffer, rounded up to a granule.
    blocked_until: datetime
    # Each candidate is a resource id and the staff member it stands for (or None).
    candidates: list[tuple[str, UUID | None]]


def staff_resource(staff_id: UUID) -> str:
    return f"staff:{staff_id}"


def service_resource(location_id: UUID, service_id: UUID) -> str:
    return f"svc:{location_id}:{service_id}"


def granule_floor(moment: datetime) -> int:
    return int(moment.timestamp()) // 60 // GRANULE_MINUTES


def granules(starts_at: datetime, blocked_until: datetime) -> range:
    """Granule numbers covering [starts_at, blocked_until)."""
    first = granule_floor(starts_at)
    last = -(-int(blocked_until.timestamp()) // (60 * GRANULE_MINUTES))
    return range(first, last)


def blocked_end(ends_at: datetime, buffer_minutes: int) -> datetime:
    """End of the interval a slot blocks: its end plus buffer, up to a whole granule."""
    buffered = ends_at + timedelta(minutes=buffer_minutes)
    return datetime.fromtimestamp(granules(ends_at, buffered).stop * GRANULE_MINUTES * 60, UTC)


@lru_cache(maxsize=4096)
def opening_intervals(
    hours: Week, tz: ZoneInfo, first_day: date, last_day: date
) -> tuple[tuple[datetime, datetime], ...]:
    """The opening ranges of local days first_day..last_day as UTC instants, in order.

    Local clock times become instants the way zoneinfo reads them (fold=0): a time
    skipped by a spring-forward change counts with the offset before it, a time that
    a fall-back change repeats means its first occurrence. A range closing at 24:00
    and one opening at 00:00 the next day join, so overnight hours work.
    """
    merged: list[tuple[datetime, datetime]] = []
    day = first_day
    while day <= last_day:
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        for opens, closes in hours[day.weekday()]:
            # Aware arithmetic on one zone is wall-clock arithmetic: 24:00 is next midnight.
            start = (midnight + timedelta(minutes=opens)).astimezone(UTC)
            end = (midnight + timedelta(minutes=closes)).astimezone(UTC)
            if merged and merged[-1][1] >= start:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        day += timedelta(days=1)
    return tuple(merged)


def fits_hours(hours: Week, tz: ZoneInfo, starts_at: datetime, ends_at: datetime) -> bool:
    """Whether [starts_at, ends_at) lies inside one opening interval."""
    first_day = starts_at.astimezone(tz).date() - timedelta(days=1)
    last_day = ends_at.astimezone(tz).date()
    return any(
        opens <= starts_at and ends_at <= closes
        for opens, closes in opening_intervals(hours, tz, first_day, last_day)
    )


def overlaps(spans: Spans, starts_at: datetime, ends_at: datetime) -> bool:
    """Whether [starts_at, ends_at) meets any of the spans."""
    return any(start < ends_at and starts_at < end for start, end in spans)


def policy_errors(policy: Policy, starts_at: datetime, now: datetime) -> dict[str, str]:
    """The booking policy's verdict on a start, naming the rule it breaks."""
    if starts_at < now + timedelta(minutes=policy.min_notice_minutes):
        return {
            "starts_at": f"must be at least {policy.min_notice_minutes} minutes from now "
            "(min_notice_minutes)"
        }
    if starts_at > now + timedelta(days=policy.max_advance_days):
        return {
            "starts_at": f"must be at most {policy.max_advance_days} days from now "
            "(max_advance_days)"
        }
    return {}


def _unavailable(message: str) -> InvalidInput:
    return InvalidInput("the slot cannot be held", fields={"starts_at": message})


@dataclass(frozen=True)
class Offer:
    """A service at a location (and maybe one chosen staff member): the ids, checked."""

    service: Service
    location: Location
    # Who may do it: the chosen member, every qualified one, or nobody (no staff).
    staff: list[StaffMember]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.location.timezone)

    def plan(self, starts_at: datetime, *, chosen: bool) -> SlotPlan:
        """What holding `starts_at` claims; InvalidInput on `starts_at` if it may not."""
        ends_at = starts_at + timedelta(minutes=self.service.duration_minutes)
        tz = self.tz
        if not fits_hours(self.location.hours, tz, starts_at, ends_at):
            raise _unavailable("outside the location's opening hours")
        if overlaps(self.location.closures, starts_at, ends_at):
            raise _unavailable("the location is closed then")
        candidates: list[tuple[str, UUID | None]]
        if self.staff:
            working = [
                m
                for m in self.staff
                if m.hours is None or fits_hours(m.hours, tz, starts_at, ends_at)
            ]
            candidates = [
                (staff_resource(m.id), m.id)
                for m in working
                if not overlaps(m.time_off, starts_at, ends_at)
            ]
            if not candidates:
                if not chosen:
                    raise _unavailable("no staff member works then")
                if working:
                    raise _unavailable("the staff member is off then")
                raise _unavailable("outside the staff member's hours")
        else:
            candidates = [(service_resource(self.location.id, self.service.id), None)]
        blocked_until = blocked_end(ends_at, self.service.buffer_minutes)
        return SlotPlan(self.service, self.location, starts_at, ends_at, blocked_until, candidates)


def resolve_offer(
    catalogue: BusinessCatalogue, *, service_id: UUID, location_id: UUID, staff_id: UUID | None
) -> Offer:
    """Check the ids against the catalogue; InvalidInput names each one that does not fit.

    Another business's ids are simply unknown here, so nothing about them leaks.
    """
    errors: dict[str, str] = {}
    service = catalogue.services.get(service_id)
    location = catalogue.locations.get(location_id)
    member = catalogue.staff.get(staff_id) if staff_id is not None else None
    if service is None:
        errors["service_id"] = "no such service"
    elif not service.active:
        errors["service_id"] = "the service is not active"
    if location is None:
        errors["location_id"] = "no such location"
    elif service is not None and location.id not in service.location_ids:
        errors["location_id"] = "the service is not offered at this location"
    if staff_id is not None and member is None:
        errors["staff_id"] = "no such staff member"
    elif member is not None and service is not None and location is not None:
        if service.id not in member.service_ids or location.id not in member.location_ids:
            errors["staff_id"] = "this staff member does not perform the service at this location"
    if errors or service is None or location is None:
        raise InvalidInput("the slot cannot be held", fields=errors)
    if member is not None:
        return Offer(service, location, [member])
    return Offer(service, location, _qualified_staff(catalogue, service, location))


def _qualified_staff(
    catalogue: BusinessCatalogue, service: Service, location: Location
) -> list[StaffMember]:
    return [
        member
        for member in catalogue.staff.values()
        if service.id in member.service_ids and location.id in member.location_ids
    ]


def moment_errors(starts_at: datetime, now: datetime) -> dict[str, str]:
    if starts_at <= now:
        return {"starts_at": "must be in the future"}
    if starts_at.timestamp() % (GRANULE_MINUTES * 60):
        return {"starts_at": f"must fall on a {GRANULE_MINUTES}-minute boundary"}
    return {}


def check_slot(
    catalogue: BusinessCatalogue,
    *,
    service_id: UUID,
    location_id: UUID,
    staff_id: UUID | None,
    starts_at: datetime,
    now: datetime,
    apply_policy: bool = True,
) -> SlotPlan:
    """Validate a requested slot; InvalidInput names each field that rules it out.

    `apply_policy=False` skips notice and advance: a business moving its own booking
    is not held to the rules it sets for clients."""
    errors = moment_errors(starts_at, now)
    try:
        offer = resolve_offer(
            catalogue, service_id=service_id, location_id=location_id, staff_id=staff_id
        )
    except InvalidInput as error:
        raise InvalidInput(error.detail, fields={**error.fields, **errors}) from None
    if not errors and apply_policy:
        errors = policy_errors(offer.service.policy, starts_at, now)
    if errors:
        raise InvalidInput("the slot cannot be held", fields=errors)
    return offer.plan(starts_at, chosen=staff_id is not None)


def bookable_plans(offer: Offer, start: datetime, end: datetime, now: datetime) -> list[SlotPlan]:
    """The slots in [start, end) that `check_slot` would accept right now, before
    looking at what is held or booked: the availability listing's candidates."""
    plans = []
    for moment in candidate_starts(offer, max(start, now), end):
        if moment_errors(moment, now) or policy_errors(offer.service.policy, moment, now):
            continue
        try:
            # Only whether it may be held matters here, not why not.
            plans.append(offer.plan(moment, chosen=False))
        except InvalidInput:
            continue  # closed, or nobody works then
    return plans


def candidate_starts(offer: Offer, start: datetime, end: datetime) -> list[datetime]:
    """Starts in [start, end) every `slot_step_minutes` of the policy from each opening
    time (rounded up to a granule) whose service time fits before the closing time."""
    tz = offer.tz
    step = timedelta(minutes=offer.service.policy.slot_step_minutes)
    duration = timedelta(minutes=offer.service.duration_minutes)
    granule = GRANULE_MINUTES * 60
    starts: list[datetime] = []
    for opens, closes in opening_intervals(
        offer.location.hours,
        tz,
        start.astimezone(tz).date() - timedelta(days=1),
        # A slot starting just before `end` may run (up to a day) into the hours of the
        # days after; stopping at the calendar's last day rather than overflowing.
        min(end.astimezone(tz).date(), date.max - timedelta(days=2)) + timedelta(days=2),
    ):
        moment = datetime.fromtimestamp(-(-int(opens.timestamp()) // granule) * granule, UTC)
        while moment + duration <= closes and moment < end:
            if moment >= start:
                starts.append(moment)
            moment += step
    return starts
