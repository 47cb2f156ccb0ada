"""Which resource a requested slot needs, and whether the catalogue allows it.

Pure functions over a `BusinessCatalogue`: no Redis, no I/O. The hold endpoint and
the availability listing both decide through `check_slot`, so every time listed as
available is one the hold endpoint accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from calendence.errors import InvalidInput
from calendence.schemas.catalogue import WeeklyHours

from hold_service.catalogue_cache import BusinessCatalogue, Location, Service, StaffMember

# Holds claim time in granules of this many minutes; starts must fall on one.
GRANULE_MINUTES = 5
# Availability lists starts this far apart, counted from each opening time.
AVAILABILITY_STEP_MINUTES = 15
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


def fits_hours(hours: WeeklyHours, tz: ZoneInfo, starts_at: datetime, ends_at: datetime) -> bool:
    """Whether [starts_at, ends_at) lies inside one opening range of its local day."""
    local_start = starts_at.astimezone(tz)
    local_end = ends_at.astimezone(tz)
    day = local_start.date()
    start_minute = local_start.hour * 60 + local_start.minute
    if local_end.date() == day:
        end_minute = local_end.hour * 60 + local_end.minute
    elif local_end.date() == day + timedelta(days=1) and local_end.time() == datetime.min.time():
        end_minute = 24 * 60
    else:
        return False
    return any(o <= start_minute and end_minute <= c for o, c in hours.ranges(day.weekday()))


def _qualified_staff(
    catalogue: BusinessCatalogue, service: Service, location: Location
) -> list[StaffMember]:
    return [
        member
        for member in catalogue.staff.values()
        if service.id in member.service_ids and location.id in member.location_ids
    ]


def _works_then(
    member: StaffMember, location: Location, starts_at: datetime, ends_at: datetime
) -> bool:
    return member.hours is None or fits_hours(
        member.hours, ZoneInfo(location.timezone), starts_at, ends_at
    )


def check_slot(
    catalogue: BusinessCatalogue,
    *,
    service_id: UUID,
    location_id: UUID,
    staff_id: UUID | None,
    starts_at: datetime,
    now: datetime,
) -> SlotPlan:
    """Validate a requested slot; InvalidInput names each field that rules it out."""
    errors: dict[str, str] = {}
    service = catalogue.services.get(service_id)
    location = catalogue.locations.get(location_id)
    if service is None:
        errors["service_id"] = "no such service"
    elif not service.active:
        errors["service_id"] = "the service is not active"
    if location is None:
        errors["location_id"] = "no such location"
    if starts_at <= now:
        errors["starts_at"] = "must be in the future"
    elif starts_at.timestamp() % (GRANULE_MINUTES * 60):
        errors["starts_at"] = f"must fall on a {GRANULE_MINUTES}-minute boundary"
    if errors or service is None or location is None:
        raise InvalidInput("the slot cannot be held", fields=errors)
    if location.id not in service.location_ids:
        raise InvalidInput(
            "the slot cannot be held",
            fields={"location_id": "the service is not offered at this location"},
        )

    ends_at = starts_at + timedelta(minutes=service.duration_minutes)
    blocked_until = blocked_end(ends_at, service.buffer_minutes)
    if not fits_hours(location.hours, ZoneInfo(location.timezone), starts_at, ends_at):
        raise InvalidInput(
            "the slot cannot be held", fields={"starts_at": "outside the location's opening hours"}
        )

    qualified = _qualified_staff(catalogue, service, location)
    if staff_id is not None:
        member = catalogue.staff.get(staff_id)
        if member is None:
            raise InvalidInput(
                "the slot cannot be held", fields={"staff_id": "no such staff member"}
            )
        if member not in qualified:
            raise InvalidInput(
                "the slot cannot be held",
                fields={
                    "staff_id": "this staff member does not perform the service at this location"
                },
            )
        if not _works_then(member, location, starts_at, ends_at):
            raise InvalidInput(
                "the slot cannot be held", fields={"starts_at": "outside the staff member's hours"}
            )
        candidates: list[tuple[str, UUID | None]] = [(staff_resource(member.id), member.id)]
    elif qualified:
        candidates = [
            (staff_resource(m.id), m.id)
            for m in qualified
            if _works_then(m, location, starts_at, ends_at)
        ]
        if not candidates:
            raise InvalidInput(
                "the slot cannot be held",
                fields={"starts_at": "no staff member works at this time"},
            )
    else:
        candidates = [(service_resource(location.id, service.id), None)]
    return SlotPlan(service, location, starts_at, ends_at, blocked_until, candidates)


def candidate_starts(
    location: Location, service: Service, first_day: date, last_day: date
) -> list[datetime]:
    """Starts every AVAILABILITY_STEP_MINUTES from each opening time, local days inclusive."""
    tz = ZoneInfo(location.timezone)
    starts: list[datetime] = []
    day = first_day
    step = timedelta(minutes=AVAILABILITY_STEP_MINUTES)
    while day <= last_day:
        for opens, closes in location.hours.ranges(day.weekday()):
            midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
            moment = (midnight + timedelta(minutes=opens)).astimezone(UTC)
            # Aligning to a granule keeps odd opening times (09:02) bookable.
            granule = GRANULE_MINUTES * 60
            moment = datetime.fromtimestamp(-(-int(moment.timestamp()) // granule) * granule, UTC)
            close = (midnight + timedelta(minutes=closes)).astimezone(UTC)
            duration = timedelta(minutes=service.duration_minutes)
            while moment + duration <= close:
                starts.append(moment)
                moment += step
        day += timedelta(days=1)
    return starts
