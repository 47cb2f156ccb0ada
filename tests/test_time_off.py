"""Time off and closures: a staff member away, a location shut, and what they change."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.api import Answer, Tenant, created, iso, new_tenant, tomorrow_at
from tests.booking_helpers import JANE
from tests.catalogue_helpers import status_within
from tests.hold_helpers import HOLD_PATH, Shop, assert_problem, field_errors, open_shop

PATH = "/api/v1/time-off"


async def time_off(tenant: Tenant, key: str | None = None, **fields: Any) -> Answer:
    body = {k: iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}
    return await tenant.api.post(PATH, key or tenant.business_key, body)


async def listed_starts(shop: Shop, start: datetime, end: datetime, **extra: str) -> list[str]:
    answer = await shop.tenant.api.get(
        "/api/v1/availability",
        shop.tenant.business_key,
        params={
            "service_id": shop.service_id,
            "location_id": shop.location_id,
            "from": iso(start),
            "to": iso(end),
            **extra,
        },
    )
    assert answer.status == 200, answer.body
    return [slot["starts_at"] for slot in answer.body["slots"]]


async def staff_on_slots(shop: Shop, start: datetime, end: datetime) -> set[str]:
    answer = await shop.tenant.api.get(
        "/api/v1/availability",
        shop.tenant.business_key,
        params={
            "service_id": shop.service_id,
            "location_id": shop.location_id,
            "from": iso(start),
            "to": iso(end),
        },
    )
    assert answer.status == 200, answer.body
    return {member for slot in answer.body["slots"] for member in slot["staff_ids"]}


# --- creating, showing, listing, deleting ------------------------------------------


async def test_time_off_for_a_staff_member_is_created_and_shown(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=1)
    member = shop.staff[0]["id"]
    made = created(
        await time_off(
            tenant,
            staff_id=member,
            starts_at=tomorrow_at(0),
            ends_at=tomorrow_at(23, 59),
            reason="Holiday",
        )
    )
    assert made["object"] == "time_off"
    assert made["staff_id"] == member and made["location_id"] is None
    assert made["reason"] == "Holiday"
    assert made["conflicting_booking_ids"] == []
    shown = await tenant.api.get(f"{PATH}/{made['id']}", tenant.business_key)
    assert shown.status == 200
    assert {k: v for k, v in made.items() if k != "conflicting_booking_ids"} == shown.body


async def test_time_off_naming_both_or_neither_subject_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=1)
    span: dict[str, Any] = {"starts_at": tomorrow_at(9), "ends_at": tomorrow_at(10)}
    both = await time_off(
        tenant, staff_id=shop.staff[0]["id"], location_id=shop.location_id, **span
    )
    neither = await time_off(tenant, **span)
    assert "staff_id" in field_errors(both)
    assert "staff_id" in field_errors(neither)


async def test_time_off_ending_before_it_starts_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    answer = await time_off(
        tenant, location_id=shop.location_id, starts_at=tomorrow_at(10), ends_at=tomorrow_at(9)
    )
    assert "ends_at" in field_errors(answer)


async def test_time_off_longer_than_366_days_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    start = tomorrow_at(0)
    too_long = await time_off(
        tenant,
        location_id=shop.location_id,
        starts_at=start,
        ends_at=start + timedelta(days=366, minutes=1),
    )
    assert "ends_at" in field_errors(too_long)
    longest = await time_off(
        tenant, location_id=shop.location_id, starts_at=start, ends_at=start + timedelta(days=366)
    )
    assert longest.status == 201, longest.body


async def test_time_off_without_an_offset_or_with_a_long_reason_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    answer = await time_off(
        tenant,
        location_id=shop.location_id,
        starts_at="2030-01-01T09:00:00",
        ends_at=tomorrow_at(10),
        reason="x" * 501,
    )
    assert {"starts_at", "reason"} <= set(field_errors(answer))


async def test_time_off_for_another_businesses_staff_member_is_422(
    tenant: Tenant, hub: dict[str, str]
) -> None:
    other = await open_shop(await new_tenant(tenant.api, hub["key"]), staff=1)
    answer = await time_off(
        tenant, staff_id=other.staff[0]["id"], starts_at=tomorrow_at(9), ends_at=tomorrow_at(10)
    )
    assert "staff_id" in field_errors(answer)


async def test_another_businesses_time_off_is_404(tenant: Tenant, hub: dict[str, str]) -> None:
    other_tenant = await new_tenant(tenant.api, hub["key"])
    other = await open_shop(other_tenant)
    made = created(
        await time_off(
            other_tenant,
            location_id=other.location_id,
            starts_at=tomorrow_at(9),
            ends_at=tomorrow_at(10),
        )
    )
    assert_problem(await tenant.api.get(f"{PATH}/{made['id']}", tenant.business_key), 404)
    assert_problem(await tenant.api.delete(f"{PATH}/{made['id']}", tenant.business_key), 404)


async def test_time_off_is_refused_to_session_tokens(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    answer = await time_off(
        tenant,
        token,
        location_id=shop.location_id,
        starts_at=tomorrow_at(9),
        ends_at=tomorrow_at(10),
    )
    assert_problem(answer, 403)


async def test_a_hub_key_manages_time_off_of_its_business(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    answer = await tenant.api.post(
        PATH,
        tenant.hub_key,
        {
            "location_id": shop.location_id,
            "starts_at": iso(tomorrow_at(9)),
            "ends_at": iso(tomorrow_at(10)),
        },
        headers={"Calendence-Business": tenant.business_id},
    )
    assert answer.status == 201, answer.body


async def test_time_off_lists_filter_by_subject_and_overlap(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=2)
    first, second = (m["id"] for m in shop.staff)
    day = tomorrow_at(0)
    away_first = created(
        await time_off(tenant, staff_id=first, starts_at=day, ends_at=day + timedelta(days=1))
    )
    away_second = created(
        await time_off(
            tenant,
            staff_id=second,
            starts_at=day + timedelta(days=3),
            ends_at=day + timedelta(days=4),
        )
    )
    closed = created(
        await time_off(
            tenant,
            location_id=shop.location_id,
            starts_at=day + timedelta(days=1),
            ends_at=day + timedelta(days=2),
        )
    )

    async def ids(**params: str) -> list[str]:
        answer = await tenant.api.get(PATH, tenant.business_key, params=params)
        assert answer.status == 200, answer.body
        return [item["id"] for item in answer.body["data"]]

    assert await ids() == [away_first["id"], away_second["id"], closed["id"]]
    assert await ids(staff_id=second) == [away_second["id"]]
    assert await ids(location_id=shop.location_id) == [closed["id"]]
    # Overlapping [from, to): the first ends exactly at `from`, so it is out.
    assert await ids(
        **{"from": iso(day + timedelta(days=1)), "to": iso(day + timedelta(days=3))}
    ) == [closed["id"]]


async def test_time_off_lists_page_with_a_cursor(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    made = [
        created(
            await time_off(
                tenant,
                location_id=shop.location_id,
                starts_at=tomorrow_at(9) + timedelta(days=n),
                ends_at=tomorrow_at(10) + timedelta(days=n),
            )
        )["id"]
        for n in range(3)
    ]
    first = await tenant.api.get(PATH, tenant.business_key, params={"limit": "2"})
    assert first.body["has_more"] is True
    rest = await tenant.api.get(
        PATH, tenant.business_key, params={"limit": "2", "cursor": first.body["next_cursor"]}
    )
    assert [i["id"] for i in first.body["data"] + rest.body["data"]] == made
    assert rest.body["has_more"] is False


async def test_deleted_time_off_is_gone_and_its_time_offered_again(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    start, end = tomorrow_at(9), tomorrow_at(17)
    made = created(
        await time_off(tenant, location_id=shop.location_id, starts_at=start, ends_at=end)
    )
    assert await listed_starts(shop, start, end) == []
    deleted = await tenant.api.delete(f"{PATH}/{made['id']}", tenant.business_key)
    assert deleted.status == 204
    assert_problem(await tenant.api.get(f"{PATH}/{made['id']}", tenant.business_key), 404)
    assert iso(tomorrow_at(10)) in await listed_starts(shop, start, end)


# --- what time off changes ----------------------------------------------------------


async def test_a_closed_location_offers_nothing_and_holds_inside_are_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=2)
    start, end = tomorrow_at(9), tomorrow_at(17)
    assert await listed_starts(shop, start, end)
    created(await time_off(tenant, location_id=shop.location_id, starts_at=start, ends_at=end))
    assert await listed_starts(shop, start, end) == []
    token = await tenant.session_token()
    errors = field_errors(await shop.hold(token, tomorrow_at(12)))
    assert "closed" in errors["starts_at"]


async def test_a_partial_closure_removes_only_the_times_that_overlap_it(tenant: Tenant) -> None:
    shop = await open_shop(tenant)  # 30-minute service, no staff
    start, end = tomorrow_at(9), tomorrow_at(17)
    created(
        await time_off(
            tenant, location_id=shop.location_id, starts_at=tomorrow_at(12), ends_at=tomorrow_at(13)
        )
    )
    listed = await listed_starts(shop, start, end)
    assert iso(tomorrow_at(11, 30)) in listed  # ends exactly as the closure starts
    assert iso(tomorrow_at(11, 45)) not in listed
    assert iso(tomorrow_at(12, 45)) not in listed
    assert iso(tomorrow_at(13)) in listed
    token = await tenant.session_token()
    assert (await shop.hold(token, tomorrow_at(11, 30))).status == 201
    assert "starts_at" in field_errors(await shop.hold(token, tomorrow_at(12, 50)))


async def test_staff_on_time_off_are_not_offered_and_the_other_is_assigned(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=2)
    away, working = (m["id"] for m in shop.staff)
    start, end = tomorrow_at(9), tomorrow_at(17)
    created(await time_off(tenant, staff_id=away, starts_at=start, ends_at=end))
    assert await staff_on_slots(shop, start, end) == {working}
    tokens = await shop.sessions(3)
    holds = [created(await shop.hold(t, tomorrow_at(10))) for t in tokens[:1]]
    assert holds[0]["staff_id"] == working
    # The only one working then is taken: nobody else may be assigned.
    assert_problem(await shop.hold(tokens[1], tomorrow_at(10)), 409)


async def test_a_hold_asking_for_a_staff_member_on_time_off_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=2)
    away = shop.staff[0]["id"]
    created(
        await time_off(tenant, staff_id=away, starts_at=tomorrow_at(9), ends_at=tomorrow_at(17))
    )
    token = await tenant.session_token()
    errors = field_errors(await shop.hold(token, tomorrow_at(10), staff_id=away))
    assert "off" in errors["starts_at"]
    listed = await listed_starts(shop, tomorrow_at(9), tomorrow_at(17), staff_id=away)
    assert listed == []


async def test_time_off_over_bookings_lists_them_and_changes_nothing(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=1)
    member = shop.staff[0]["id"]
    token = await tenant.session_token()
    hold = created(await shop.hold(token, tomorrow_at(10)))
    booking = created(
        await tenant.api.post(
            "/api/v1/bookings", token, {"hold_id": hold["hold_id"], "client": JANE}
        )
    )
    other_token = await tenant.session_token()
    later_hold = created(await shop.hold(other_token, tomorrow_at(14)))
    made = created(
        await time_off(tenant, staff_id=member, starts_at=tomorrow_at(9), ends_at=tomorrow_at(17))
    )
    assert made["conflicting_booking_ids"] == [booking["id"]]
    still = await tenant.api.get(f"/api/v1/bookings/{booking['id']}", tenant.business_key)
    assert still.body["status"] == "confirmed"
    assert still.body["starts_at"] == booking["starts_at"]
    # A hold placed before the time off is not revoked: it still makes a booking.
    later = await tenant.api.post(
        "/api/v1/bookings", other_token, {"hold_id": later_hold["hold_id"], "client": JANE}
    )
    assert later.status == 201, later.body


async def test_cancelled_bookings_are_not_listed_as_conflicting(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    hold = created(await shop.hold(token, tomorrow_at(10)))
    booking = created(
        await tenant.api.post(
            "/api/v1/bookings", token, {"hold_id": hold["hold_id"], "client": JANE}
        )
    )
    await tenant.api.delete(f"/api/v1/bookings/{booking['id']}", tenant.business_key)
    made = created(
        await time_off(
            tenant, location_id=shop.location_id, starts_at=tomorrow_at(9), ends_at=tomorrow_at(17)
        )
    )
    assert made["conflicting_booking_ids"] == []


async def test_time_off_takes_effect_on_holds_at_once(tenant: Tenant) -> None:
    """The hold-service catalogue cache learns of time off as of any catalogue change:
    well within a second, where the cache's own lifetime is a minute."""
    shop = await open_shop(tenant, staff=1)
    token = await tenant.session_token()
    # Warm the cache with a hold, then give it back.
    warm = created(await shop.hold(token, tomorrow_at(15)))
    assert (await shop.release(token, warm["hold_id"])).status == 204
    created(
        await time_off(
            tenant, staff_id=shop.staff[0]["id"], starts_at=tomorrow_at(9), ends_at=tomorrow_at(17)
        )
    )
    status, elapsed = await status_within(lambda: shop.hold(token, tomorrow_at(15)), 422, 5)
    assert status == 422 and elapsed < 1, elapsed


async def test_demo_flow_first_staff_member_off_tomorrow_location_closed_the_day_after(
    tenant: Tenant,
) -> None:
    shop = await open_shop(tenant, staff=2)
    first, second = (m["id"] for m in shop.staff)
    tomorrow = tomorrow_at(0)
    day_after = tomorrow + timedelta(days=1)
    created(
        await time_off(
            tenant, staff_id=first, starts_at=tomorrow, ends_at=day_after, reason="Day off"
        )
    )
    created(
        await time_off(
            tenant,
            location_id=shop.location_id,
            starts_at=day_after,
            ends_at=day_after + timedelta(days=1),
            reason="Public holiday",
        )
    )
    assert await staff_on_slots(shop, tomorrow, day_after) == {second}
    assert await listed_starts(shop, day_after, day_after + timedelta(days=1)) == []
    token = await tenant.session_token()
    assert HOLD_PATH
    assert "starts_at" in field_errors(await shop.hold(token, day_after + timedelta(hours=12)))
