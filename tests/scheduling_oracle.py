"""Schedules made up by hypothesis, and a plain reading of them to check the slot rules by.

The reading decides instant by instant ("is the place open at this moment, local
time?"), nothing like the interval arithmetic of hold_service.slots, so the two can
disagree. Clock times it generates avoid 01:00-03:00 local, where the zones below
skip or repeat an hour: there "09:00" may name no instant or two, and the platform's
reading (the first occurrence) is a convention, not something to check by oracle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from hold_service.catalogue_cache import Week
from hypothesis import strategies as st

GRANULE = timedelta(minutes=5)
ZONES = ("Europe/London", "America/New_York", "Australia/Sydney", "Europe/Berlin")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Local clock times (minutes) never skipped or repeated by the zones above.
SAFE_MINUTES = [m for m in range(0, 24 * 60 + 1, 5) if m <= 60 or m >= 180]


def clock_changes(zone: ZoneInfo, after: date, days: int = 400) -> list[date]:
    """Local days on which the zone's UTC offset changes, in the days after `after`."""
    found = []
    for offset in range(1, days):
        day = after + timedelta(days=offset)
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        # Aware arithmetic in one zone is wall-clock arithmetic: the next local midnight.
        if start.utcoffset() != (start + timedelta(days=1)).utcoffset():
            found.append(day)
    return found


@st.composite
def day_ranges(draw: st.DrawFn) -> list[tuple[int, int]]:
    """0-2 opening ranges of one day, in order, not overlapping (they may touch)."""
    count = draw(st.integers(0, 2))
    bounds = sorted(
        draw(st.sets(st.sampled_from(SAFE_MINUTES), min_size=2 * count, max_size=2 * count))
    )
    return [(bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2)]


weeks = st.lists(day_ranges(), min_size=7, max_size=7).map(
    lambda days: tuple(tuple(day) for day in days)
)
# Mostly long days, so that there is something to offer.
generous_weeks = st.one_of(weeks, st.just(tuple(((0, 1440),) for _ in range(7))))


def as_json_week(week: Week) -> dict[str, list[dict[str, str]]]:
    """A Week as the API's weekly hours document."""

    def clock(minutes: int) -> str:
        return f"{minutes // 60:02d}:{minutes % 60:02d}"

    return {
        WEEKDAYS[day]: [{"opens": clock(o), "closes": clock(c)} for o, c in week[day]]
        for day in range(7)
    }


@dataclass(frozen=True)
class Schedule:
    zone: ZoneInfo
    window_start: datetime  # UTC, on a granule
    window_end: datetime
    location_hours: Week
    closures: tuple[tuple[datetime, datetime], ...]
    # Per staff member: own hours (None: the location's) and time off.
    staff: tuple[tuple[Week | None, tuple[tuple[datetime, datetime], ...]], ...]
    duration_minutes: int
    buffer_minutes: int
    staff_ids: tuple[UUID, ...]

    def granules(self) -> Iterator[datetime]:
        moment = self.window_start
        while moment < self.window_end:
            yield moment
            moment += GRANULE


def spans_in(start: datetime, end: datetime) -> st.SearchStrategy[tuple[datetime, datetime]]:
    length = int((end - start) / GRANULE)
    return st.tuples(st.integers(0, length), st.integers(1, 150)).map(
        lambda pair: (start + pair[0] * GRANULE, start + (pair[0] + pair[1]) * GRANULE)
    )


@st.composite
def schedules(
    draw: st.DrawFn,
    *,
    first_day: date,
    window_hours: int = 48,
    lead_hours: int = 24,
    changes: int = 2,
) -> Schedule:
    """A location with hours and closures, 0-2 staff with hours and time off, in a
    window starting up to `lead_hours` before the local midnight that begins a day with
    a clock change (one of the next `changes` of a drawn zone after `first_day`)."""
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    change = draw(st.sampled_from(clock_changes(zone, first_day)[:changes]))
    local_midnight = datetime(change.year, change.month, change.day, tzinfo=zone)
    start = (local_midnight - timedelta(hours=draw(st.integers(0, lead_hours)))).astimezone(UTC)
    end = start + timedelta(hours=window_hours)
    member_count = draw(st.integers(0, 2))
    return Schedule(
        zone=zone,
        window_start=start,
        window_end=end,
        location_hours=draw(generous_weeks),
        closures=tuple(draw(st.lists(spans_in(start, end), max_size=2))),
        staff=tuple(
            (
                draw(st.one_of(st.none(), generous_weeks)),
                tuple(draw(st.lists(spans_in(start, end), max_size=2))),
            )
            for _ in range(member_count)
        ),
        duration_minutes=draw(st.sampled_from([5, 15, 30, 45, 60, 90])),
        buffer_minutes=draw(st.sampled_from([0, 5, 10, 15])),
        staff_ids=tuple(uuid4() for _ in range(member_count)),
    )


def open_at(week: Week, zone: ZoneInfo, moment: datetime) -> bool:
    local = moment.astimezone(zone)
    minute = local.hour * 60 + local.minute
    return any(opens <= minute < closes for opens, closes in week[local.weekday()])


def covered(week: Week, zone: ZoneInfo, start: datetime, end: datetime) -> bool:
    """Open at every instant of [start, end) (hours change only on granules)."""
    moment = start
    while moment < end:
        if not open_at(week, zone, moment):
            return False
        moment += GRANULE
    return True


def clear(spans: tuple[tuple[datetime, datetime], ...], start: datetime, end: datetime) -> bool:
    return all(not (s < end and start < e) for s, e in spans)


def free_staff(schedule: Schedule, start: datetime) -> list[UUID]:
    """Who could take a slot starting at `start`, by the plain reading (rules only)."""
    end = start + timedelta(minutes=schedule.duration_minutes)
    return [
        member
        for member, (hours, away) in zip(schedule.staff_ids, schedule.staff, strict=True)
        if (hours is None or covered(hours, schedule.zone, start, end)) and clear(away, start, end)
    ]


def location_allows(schedule: Schedule, start: datetime) -> bool:
    end = start + timedelta(minutes=schedule.duration_minutes)
    return covered(schedule.location_hours, schedule.zone, start, end) and clear(
        schedule.closures, start, end
    )
