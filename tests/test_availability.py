"""GET /api/v1/availability: bookable starts that the hold endpoint accepts."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.api import Answer, Api, Tenant, new_tenant
from tests.hold_helpers import Shop, assert_problem, field_errors, open_shop

PATH = "/api/v1/availability"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


def local_day(zone: ZoneInfo, day: date) -> tuple[datetime, datetime]:
    """Local midnight to the next local midnight."""
    start = datetime.combine(day, time(), zone)
    return start, datetime.combine(day + timedelta(days=1), time(), zone)


def tomorrow_in(zone: ZoneInfo) -> date:
    return datetime.now(zone).date() + timedelta(days=1)


async def availability(
    shop: Shop, key: str, start: datetime, end: datetime, **extra: str
) -> Answer:
    params = {
        "service_id": shop.service_id,
        "location_id": shop.location_id,
        "from": start.isoformat(),
        "to": end.isoformat(),
        **extra,
    }
    return await shop.tenant.api.get(PATH, key, params=params)


async def listed_starts(
    shop: Shop, key: str, start: datetime, end: datetime, **extra: str
) -> list[str]:
    answer = await availability(shop, key, start, end, **extra)
    assert answer.status == 200, answer.body
    return [slot["starts_at"] for slot in answer.body["slots"]]


def clock(zone: ZoneInfo, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), zone)


async def new_york_shop(tenant: Tenant, **service: Any) -> Shop:
    return await open_shop(tenant, location={"timezone": "America/New_York"}, **service)


# --- the listing ------------------------------------------------------------------


async def test_availability_lists_starts_in_the_locations_time_zone(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant, duration_minutes=60)
    day = tomorrow_in(NEW_YORK)
    answer = await availability(shop, await tenant.session_token(), *local_day(NEW_YORK, day))
    assert answer.status == 200, answer.body
    assert answer.body["timezone"] == "America/New_York"
    assert answer.body["service_id"] == shop.service_id
    assert answer.body["location_id"] == shop.location_id
    expected = [
        clock(NEW_YORK, day, 9) + timedelta(minutes=15 * step) for step in range(29)
    ]  # 09:00 to 16:00 local, every quarter hour
    assert [slot["starts_at"] for slot in answer.body["slots"]] == [
        moment.isoformat() for moment in expected
    ]


async def test_availability_slots_end_after_the_services_duration(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant, duration_minutes=50)
    answer = await availability(
        shop, await tenant.session_token(), *local_day(NEW_YORK, tomorrow_in(NEW_YORK))
    )
    assert answer.body["slots"]
    for slot in answer.body["slots"]:
        starts_at = datetime.fromisoformat(slot["starts_at"])
        assert datetime.fromisoformat(slot["ends_at"]) - starts_at == timedelta(minutes=50)
        assert datetime.fromisoformat(slot["ends_at"]) <= clock(NEW_YORK, starts_at.date(), 17)


async def test_availability_never_lists_a_past_time(tenant: Tenant) -> None:
    shop = await open_shop(tenant, location={"opening_hours": _AROUND_THE_CLOCK})
    now = datetime.now(UTC)
    starts = await listed_starts(
        shop, await tenant.session_token(), now - timedelta(days=1), now + timedelta(hours=2)
    )
    assert starts
    assert all(datetime.fromisoformat(s) > now for s in starts)


_AROUND_THE_CLOCK = {day: [{"opens": "00:00", "closes": "24:00"}] for day in WEEKDAYS}


async def test_every_listed_time_can_be_held(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant, duration_minutes=45, buffer_minutes=10)
    token = await tenant.session_token()
    starts = await listed_starts(shop, token, *local_day(NEW_YORK, tomorrow_in(NEW_YORK)))
    assert len(starts) == 30
    for starts_at in starts:
        held = await shop.hold(token, starts_at)
        assert held.status == 201, (starts_at, held.body)
        assert (await shop.release(token, held.body["hold_id"])).status == 204


async def test_holding_a_listed_time_removes_it_and_every_overlapping_one(
    tenant: Tenant,
) -> None:
    shop = await new_york_shop(tenant, duration_minutes=60)
    day = tomorrow_in(NEW_YORK)
    token = await tenant.session_token()
    before = await listed_starts(shop, token, *local_day(NEW_YORK, day))
    assert (await shop.hold(token, clock(NEW_YORK, day, 12))).status == 201
    after = await listed_starts(shop, token, *local_day(NEW_YORK, day))
    removed = [clock(NEW_YORK, day, 11, 15) + timedelta(minutes=15 * i) for i in range(7)]
    assert sorted(set(before) - set(after)) == [m.isoformat() for m in removed]
    assert set(after) < set(before)


async def test_a_released_hold_makes_its_times_available_again(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant)
    day = tomorrow_in(NEW_YORK)
    token = await tenant.session_token()
    before = await listed_starts(shop, token, *local_day(NEW_YORK, day))
    held = await shop.hold(token, clock(NEW_YORK, day, 12))
    assert (await shop.release(token, held.body["hold_id"])).status == 204
    assert await listed_starts(shop, token, *local_day(NEW_YORK, day)) == before


async def test_a_time_stays_listed_while_some_qualified_staff_member_is_free(
    tenant: Tenant,
) -> None:
    shop = await open_shop(tenant, location={"timezone": "America/New_York"}, staff=2)
    day = tomorrow_in(NEW_YORK)
    token = await tenant.session_token()
    held = await shop.hold(token, clock(NEW_YORK, day, 12))
    answer = await availability(shop, token, *local_day(NEW_YORK, day))
    noon = next(
        s for s in answer.body["slots"] if s["starts_at"] == clock(NEW_YORK, day, 12).isoformat()
    )
    free = {m["id"] for m in shop.staff} - {held.body["staff_id"]}
    assert noon["staff_ids"] == list(free)
    busy = await listed_starts(
        shop, token, *local_day(NEW_YORK, day), staff_id=held.body["staff_id"]
    )
    assert clock(NEW_YORK, day, 12).isoformat() not in busy
    assert clock(NEW_YORK, day, 13).isoformat() in busy


async def test_availability_of_one_staff_member_follows_their_hours(tenant: Tenant) -> None:
    mornings = {day: [{"opens": "10:00", "closes": "12:00"}] for day in WEEKDAYS}
    shop = await open_shop(
        tenant,
        location={"timezone": "America/New_York"},
        staff=1,
        staff_overrides={"weekly_hours": mornings},
    )
    day = tomorrow_in(NEW_YORK)
    starts = await listed_starts(
        shop,
        await tenant.session_token(),
        *local_day(NEW_YORK, day),
        staff_id=shop.staff[0]["id"],
    )
    assert starts == [
        (clock(NEW_YORK, day, 10) + timedelta(minutes=15 * i)).isoformat() for i in range(7)
    ]


async def test_availability_of_a_service_without_staff_ignores_staff_ids(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant)
    answer = await availability(
        shop, await tenant.session_token(), *local_day(NEW_YORK, tomorrow_in(NEW_YORK))
    )
    assert answer.body["slots"]
    assert all(slot["staff_ids"] == [] for slot in answer.body["slots"])


# --- the range and the ids --------------------------------------------------------


async def test_availability_over_31_days_is_answered(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant)
    start = datetime.combine(tomorrow_in(NEW_YORK), time(), NEW_YORK)
    starts = await listed_starts(
        shop, await tenant.session_token(), start, start + timedelta(days=31)
    )
    assert len({datetime.fromisoformat(s).date() for s in starts}) == 31


async def test_availability_over_32_days_is_422(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant)
    start = datetime.combine(tomorrow_in(NEW_YORK), time(), NEW_YORK)
    answer = await availability(
        shop, await tenant.session_token(), start, start + timedelta(days=32)
    )
    assert set(field_errors(answer)) == {"to"}


async def test_availability_ending_before_it_starts_is_422(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant)
    start = datetime.combine(tomorrow_in(NEW_YORK), time(), NEW_YORK)
    answer = await availability(
        shop, await tenant.session_token(), start, start - timedelta(hours=1)
    )
    assert set(field_errors(answer)) == {"to"}


async def test_availability_without_parameters_names_each_missing_one(
    api: Api, tenant: Tenant
) -> None:
    answer = await api.get(PATH, await tenant.session_token())
    assert set(field_errors(answer)) == {"service_id", "location_id", "from", "to"}


async def test_availability_with_times_without_offset_is_422(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant)
    answer = await tenant.api.get(
        PATH,
        await tenant.session_token(),
        params={
            "service_id": shop.service_id,
            "location_id": shop.location_id,
            "from": "2030-01-01T00:00:00",
            "to": "2030-01-02T00:00:00",
        },
    )
    assert set(field_errors(answer)) == {"from", "to"}


async def test_availability_reads_an_unencoded_plus_in_the_offset(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant)
    start, end = local_day(NEW_YORK, tomorrow_in(NEW_YORK))
    expected = await listed_starts(shop, tenant.business_key, start, end)
    typed = (
        f"{PATH}?service_id={shop.service_id}&location_id={shop.location_id}"
        f"&from={start.astimezone(UTC).isoformat()}&to={end.astimezone(UTC).isoformat()}"
    )
    assert "+00:00" in typed
    answer = await tenant.api.get(typed, tenant.business_key)
    assert answer.status == 200, answer.body
    assert [slot["starts_at"] for slot in answer.body["slots"]] == expected


async def test_availability_with_a_malformed_id_is_422(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant)
    answer = await availability(
        shop,
        await tenant.session_token(),
        *local_day(NEW_YORK, tomorrow_in(NEW_YORK)),
        service_id="nope",
    )
    assert set(field_errors(answer)) == {"service_id"}


async def test_availability_of_an_inactive_service_is_422(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant, active=False)
    answer = await availability(
        shop, await tenant.session_token(), *local_day(NEW_YORK, tomorrow_in(NEW_YORK))
    )
    assert set(field_errors(answer)) == {"service_id"}


async def test_availability_of_a_service_not_offered_there_is_422_even_when_closed(
    tenant: Tenant,
) -> None:
    shop = await new_york_shop(tenant)
    closed = await tenant.location(opening_hours={})
    answer = await availability(
        shop,
        await tenant.session_token(),
        *local_day(NEW_YORK, tomorrow_in(NEW_YORK)),
        location_id=closed["id"],
    )
    assert set(field_errors(answer)) == {"location_id"}


async def test_availability_of_a_staff_member_not_doing_the_service_is_422(
    tenant: Tenant,
) -> None:
    shop = await new_york_shop(tenant)
    other = await tenant.service([shop.location_id])
    member = await tenant.staff([other["id"]], [shop.location_id])
    answer = await availability(
        shop,
        await tenant.session_token(),
        *local_day(NEW_YORK, tomorrow_in(NEW_YORK)),
        staff_id=member["id"],
    )
    assert set(field_errors(answer)) == {"staff_id"}


@pytest.mark.parametrize("field", ["service_id", "location_id"])
async def test_availability_naming_another_businesses_id_is_422_without_details(
    api: Api, hub: dict[str, str], tenant: Tenant, field: str
) -> None:
    shop = await new_york_shop(tenant)
    stranger = await new_tenant(api, hub["key"])
    theirs = await open_shop(stranger, name="Secret Service", location={"name": "Secret Place"})
    answer = await availability(
        shop,
        await tenant.session_token(),
        *local_day(NEW_YORK, tomorrow_in(NEW_YORK)),
        **{field: getattr(theirs, field)},
    )
    assert set(field_errors(answer)) == {field}
    assert "Secret" not in str(answer.body)


async def test_availability_without_a_key_is_401(api: Api) -> None:
    assert_problem(await api.get(PATH), 401)


async def test_availability_of_an_unknown_service_is_422(tenant: Tenant) -> None:
    shop = await new_york_shop(tenant)
    answer = await availability(
        shop,
        await tenant.session_token(),
        *local_day(NEW_YORK, tomorrow_in(NEW_YORK)),
        service_id=str(uuid.uuid4()),
    )
    assert set(field_errors(answer)) == {"service_id"}


# --- daylight-saving changes ------------------------------------------------------

# Europe/London: clocks go forward 01:00 GMT -> 02:00 BST on Sunday 2027-03-28 and back
# 02:00 BST -> 01:00 GMT on Sunday 2027-10-31.
SPRING_FORWARD = date(2027, 3, 28)
FALL_BACK = date(2027, 10, 31)


async def night_shop(tenant: Tenant, opens: str, closes: str) -> Shop:
    """A London location open only on Sunday nights, and a 30-minute service."""
    return await open_shop(
        tenant,
        location={
            "timezone": "Europe/London",
            "opening_hours": {"sunday": [{"opens": opens, "closes": closes}]},
        },
        duration_minutes=30,
    )


def utc_quarters(day: date, first: str, count: int) -> list[datetime]:
    start = datetime.fromisoformat(f"{day.isoformat()}T{first}+00:00")
    return [start + timedelta(minutes=15 * i) for i in range(count)]


async def test_spring_forward_night_lists_three_real_hours_in_local_time(tenant: Tenant) -> None:
    # Open 00:00-04:00 local: 00:00 GMT to 04:00 BST, which is three hours.
    shop = await night_shop(tenant, "00:00", "04:00")
    starts = await listed_starts(
        shop, await tenant.session_token(), *local_day(LONDON, SPRING_FORWARD)
    )
    assert starts == [
        m.astimezone(LONDON).isoformat() for m in utc_quarters(SPRING_FORWARD, "00:00", 11)
    ]
    assert starts[3:5] == ["2027-03-28T00:45:00+00:00", "2027-03-28T02:00:00+01:00"]
    assert starts[-1] == "2027-03-28T03:30:00+01:00"


async def test_fall_back_night_lists_the_repeated_hour_twice(tenant: Tenant) -> None:
    # Open 01:00-03:00 local: 01:00 BST to 03:00 GMT, which is three hours.
    shop = await night_shop(tenant, "01:00", "03:00")
    starts = await listed_starts(shop, await tenant.session_token(), *local_day(LONDON, FALL_BACK))
    assert starts == [
        m.astimezone(LONDON).isoformat() for m in utc_quarters(FALL_BACK, "00:00", 11)
    ]
    assert starts[3:5] == ["2027-10-31T01:45:00+01:00", "2027-10-31T01:00:00+00:00"]


@pytest.mark.parametrize(
    ("day", "opens", "closes"),
    [
        (SPRING_FORWARD, "00:00", "04:00"),
        (SPRING_FORWARD, "01:00", "03:00"),
        (FALL_BACK, "01:00", "03:00"),
        (FALL_BACK, "00:30", "01:30"),
    ],
)
async def test_hold_accepts_exactly_the_listed_times_across_a_clock_change(
    tenant: Tenant, day: date, opens: str, closes: str
) -> None:
    shop = await night_shop(tenant, opens, closes)
    token = await tenant.session_token()
    listed = {
        datetime.fromisoformat(s) for s in await listed_starts(shop, token, *local_day(LONDON, day))
    }
    assert listed
    evening_before = datetime.combine(day - timedelta(days=1), time(22), UTC)
    for moment in (evening_before + timedelta(minutes=15 * i) for i in range(30)):
        held = await shop.hold(token, moment)
        if moment in listed:
            assert held.status == 201, (moment, held.body)
            assert (await shop.release(token, held.body["hold_id"])).status == 204
        else:
            assert set(field_errors(held)) == {"starts_at"}, moment
