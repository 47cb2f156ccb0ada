"""The booking policy: notice, advance and step rules on the business, per service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from tests.api import AROUND_THE_CLOCK, Answer, Tenant, created, iso
from tests.booking_helpers import JANE
from tests.catalogue_helpers import status_within
from tests.hold_helpers import Shop, assert_problem, field_errors, open_shop

DEFAULTS = {
    "min_notice_minutes": 0,
    "max_advance_days": 365,
    "slot_step_minutes": 15,
    "client_cancel_cutoff_minutes": 0,
    "client_reschedule_cutoff_minutes": 0,
}


def from_now(minutes: int) -> datetime:
    """A 5-minute boundary about `minutes` from now (rounded up)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    moment = now + timedelta(minutes=minutes)
    return moment + timedelta(minutes=-moment.minute % 5)


async def set_policy(tenant: Tenant, **rules: int) -> Answer:
    return await tenant.api.patch(
        f"/api/v1/businesses/{tenant.business_id}",
        tenant.business_key,
        {"booking_policy": rules},
    )


async def open_all_day(tenant: Tenant, **service: Any) -> Shop:
    return await open_shop(tenant, location={"opening_hours": AROUND_THE_CLOCK}, **service)


async def listed(shop: Shop, start: datetime, end: datetime) -> list[datetime]:
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
    return [datetime.fromisoformat(slot["starts_at"]) for slot in answer.body["slots"]]


async def test_a_new_business_has_the_default_policy(tenant: Tenant) -> None:
    answer = await tenant.api.get(f"/api/v1/businesses/{tenant.business_id}", tenant.business_key)
    assert answer.body["booking_policy"] == DEFAULTS


async def test_patching_one_rule_keeps_the_others(tenant: Tenant) -> None:
    assert (await set_policy(tenant, slot_step_minutes=30)).status == 200
    answer = await set_policy(tenant, min_notice_minutes=120)
    assert answer.status == 200, answer.body
    assert answer.body["booking_policy"] == DEFAULTS | {
        "min_notice_minutes": 120,
        "slot_step_minutes": 30,
    }


async def test_a_policy_with_bad_rules_is_422_naming_each(tenant: Tenant) -> None:
    answer = await set_policy(
        tenant, slot_step_minutes=7, max_advance_days=0, min_notice_minutes=-1
    )
    assert {
        "booking_policy.slot_step_minutes",
        "booking_policy.max_advance_days",
        "booking_policy.min_notice_minutes",
    } <= set(field_errors(answer))
    unknown = await set_policy(tenant, lead_time=5)
    assert "booking_policy.lead_time" in field_errors(unknown)


async def test_a_hold_inside_the_minimum_notice_is_422_naming_the_rule(tenant: Tenant) -> None:
    shop = await open_all_day(tenant)
    await set_policy(tenant, min_notice_minutes=120)
    token = await tenant.session_token()
    errors = field_errors(await shop.hold(token, from_now(30)))
    assert "min_notice_minutes" in errors["starts_at"]
    assert (await shop.hold(token, from_now(130))).status == 201


async def test_availability_never_lists_times_inside_the_minimum_notice(tenant: Tenant) -> None:
    shop = await open_all_day(tenant)
    await set_policy(tenant, min_notice_minutes=120)
    now = datetime.now(UTC)
    starts = await listed(shop, now, now + timedelta(hours=5))
    assert starts
    assert min(starts) >= now + timedelta(minutes=120)
    assert min(starts) < now + timedelta(minutes=120 + 15)


async def test_a_hold_beyond_the_maximum_advance_is_422_naming_the_rule(tenant: Tenant) -> None:
    shop = await open_all_day(tenant)
    await set_policy(tenant, max_advance_days=2)
    token = await tenant.session_token()
    errors = field_errors(await shop.hold(token, from_now(3 * 24 * 60)))
    assert "max_advance_days" in errors["starts_at"]
    assert (await shop.hold(token, from_now(24 * 60))).status == 201


async def test_availability_never_lists_times_beyond_the_maximum_advance(tenant: Tenant) -> None:
    shop = await open_all_day(tenant)
    await set_policy(tenant, max_advance_days=2)
    now = datetime.now(UTC)
    starts = await listed(shop, now, now + timedelta(days=4))
    assert starts
    assert max(starts) <= now + timedelta(days=2)
    assert max(starts) > now + timedelta(days=2) - timedelta(minutes=15)


async def test_availability_steps_by_the_policys_slot_step(tenant: Tenant) -> None:
    shop = await open_shop(tenant)  # 09:00-17:00 London, 30-minute service
    await set_policy(tenant, slot_step_minutes=40)
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    starts = await listed(shop, start, start + timedelta(days=1))
    gaps = {b - a for a, b in pairwise(starts)}
    assert gaps == {timedelta(minutes=40)}


async def test_a_services_own_rules_override_the_business(tenant: Tenant) -> None:
    await set_policy(tenant, min_notice_minutes=120)
    strict = await open_all_day(tenant)
    walk_in = await open_all_day(tenant, booking_policy={"min_notice_minutes": 0})
    assert walk_in.service["booking_policy"]["min_notice_minutes"] == 0
    assert walk_in.service["booking_policy"]["max_advance_days"] is None  # the business's
    token = await tenant.session_token()
    assert (await walk_in.hold(token, from_now(30))).status == 201
    assert "starts_at" in field_errors(await strict.hold(token, from_now(30)))


async def test_a_service_override_of_a_bad_value_is_422(tenant: Tenant) -> None:
    location = await tenant.location()
    answer = await tenant.api.post(
        "/api/v1/services",
        tenant.business_key,
        {
            "name": "Cut",
            "duration_minutes": 30,
            "price_amount": 100,
            "currency": "EUR",
            "location_ids": [location["id"]],
            "booking_policy": {"slot_step_minutes": 12},
        },
    )
    assert "booking_policy.slot_step_minutes" in field_errors(answer)


async def test_a_policy_change_reaches_holds_at_once(tenant: Tenant) -> None:
    shop = await open_all_day(tenant)
    token = await tenant.session_token()
    warm = created(await shop.hold(token, from_now(60)))
    assert (await shop.release(token, warm["hold_id"])).status == 204
    await set_policy(tenant, min_notice_minutes=180)
    # Well within a second, where the cache's own lifetime is a minute.
    status, elapsed = await status_within(lambda: shop.hold(token, from_now(60)), 422, 5)
    assert status == 422 and elapsed < 1, elapsed


async def test_a_booking_keeps_the_policy_it_was_made_under(tenant: Tenant) -> None:
    shop = await open_all_day(tenant, booking_policy={"client_cancel_cutoff_minutes": 1440})
    await set_policy(tenant, min_notice_minutes=60)
    token = await tenant.session_token()
    hold = created(await shop.hold(token, from_now(90)))
    booking = created(
        await tenant.api.post(
            "/api/v1/bookings", token, {"hold_id": hold["hold_id"], "client": JANE}
        )
    )
    in_force = DEFAULTS | {"min_notice_minutes": 60, "client_cancel_cutoff_minutes": 1440}
    assert booking["policy"] == in_force
    await set_policy(tenant, min_notice_minutes=0, max_advance_days=30)
    await tenant.api.patch(
        f"/api/v1/services/{shop.service_id}", tenant.business_key, {"booking_policy": {}}
    )
    shown = await tenant.api.get(f"/api/v1/bookings/{booking['id']}", tenant.business_key)
    assert shown.body["policy"] == in_force


async def test_a_business_rescheduling_is_not_held_to_the_clients_notice(tenant: Tenant) -> None:
    shop = await open_all_day(tenant)
    token = await tenant.session_token()
    hold = created(await shop.hold(token, from_now(300)))
    booking = created(
        await tenant.api.post(
            "/api/v1/bookings", token, {"hold_id": hold["hold_id"], "client": JANE}
        )
    )
    await set_policy(tenant, min_notice_minutes=240)
    moved = await tenant.api.patch(
        f"/api/v1/bookings/{booking['id']}", tenant.business_key, {"starts_at": iso(from_now(30))}
    )
    assert moved.status == 200, moved.body
    assert_problem(await shop.hold(token, from_now(30) + timedelta(hours=1)), 422)
