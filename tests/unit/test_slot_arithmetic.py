"""How a slot becomes the granules it blocks, and how weekly hours become instants:
the arithmetic under every hold and availability answer, across clock changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hold_service.catalogue_cache import Week
from hold_service.slots import (
    blocked_end,
    fits_hours,
    granules,
    moment_errors,
    opening_intervals,
)

BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")
NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
NINE_TO_FIVE: Week = tuple(((540, 1020),) for _ in range(7))
OVERNIGHT: Week = tuple(((0, 120), (1320, 1440)) for _ in range(7))


def at(hour: int, minute: int = 0, day: int = 7) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC)


def test_a_buffer_is_rounded_up_to_a_whole_granule() -> None:
    assert blocked_end(at(10, 30), 7) == at(10, 40)


def test_a_slot_without_buffer_blocks_exactly_its_own_time() -> None:
    assert blocked_end(at(10, 30), 0) == at(10, 30)


def test_granules_cover_a_slot_half_open() -> None:
    covered = granules(at(10), at(10, 30))
    assert len(covered) == 6
    assert granules(at(10, 30), at(11)).start == covered.stop


def test_a_start_off_the_five_minute_grid_is_refused() -> None:
    assert moment_errors(at(10, 3), NOW) == {"starts_at": "must fall on a 5-minute boundary"}


def test_a_start_in_the_past_is_refused_before_its_grid() -> None:
    assert moment_errors(at(7, 3), NOW) == {"starts_at": "must be in the future"}


def test_a_future_start_on_the_grid_passes() -> None:
    assert moment_errors(at(10, 5), NOW) == {}


def test_local_hours_follow_the_zone_offset_in_winter_and_summer() -> None:
    winter = opening_intervals(NINE_TO_FIVE, BERLIN, at(0).date(), at(0).date())
    july = datetime(2030, 7, 1, tzinfo=UTC).date()
    summer = opening_intervals(NINE_TO_FIVE, BERLIN, july, july)
    assert winter == ((at(8), at(16)),)
    assert summer == ((datetime(2030, 7, 1, 7, tzinfo=UTC), datetime(2030, 7, 1, 15, tzinfo=UTC)),)


def test_the_day_clocks_spring_forward_is_an_hour_shorter() -> None:
    change = datetime(2030, 3, 31, tzinfo=UTC).date()
    [(opens, closes)] = opening_intervals(
        tuple(((0, 1440),) for _ in range(7)), BERLIN, change, change
    )
    assert closes - opens == timedelta(hours=23)


def test_the_day_clocks_fall_back_is_an_hour_longer() -> None:
    change = datetime(2030, 10, 27, tzinfo=UTC).date()
    [(opens, closes)] = opening_intervals(
        tuple(((0, 1440),) for _ in range(7)), BERLIN, change, change
    )
    assert closes - opens == timedelta(hours=25)


def test_hours_closing_at_midnight_join_the_next_days_early_hours() -> None:
    monday = at(0).date()
    intervals = opening_intervals(OVERNIGHT, UTC_ZONE, monday, monday + timedelta(days=1))
    assert (at(22), at(2, day=8)) in intervals


def test_an_overnight_slot_fits_hours_that_run_past_midnight() -> None:
    assert fits_hours(OVERNIGHT, UTC_ZONE, at(23, 30), at(0, 30, day=8))


def test_a_slot_running_past_closing_does_not_fit() -> None:
    assert not fits_hours(NINE_TO_FIVE, UTC_ZONE, at(16, 45), at(17, 15))


def test_a_slot_ending_exactly_at_closing_fits() -> None:
    assert fits_hours(NINE_TO_FIVE, UTC_ZONE, at(16, 30), at(17))
