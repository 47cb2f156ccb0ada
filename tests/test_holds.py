"""POST /api/v1/bookings/hold and DELETE /api/v1/bookings/hold/{id}: placing and releasing holds."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from calendence import rpc
from calendence.devstack.processes import ManagedProcess, free_port, wait_for_port
from calendence.devstack.stack import LocalStack
from calendence.hold.v1 import hold_pb2, hold_pb2_grpc
from calendence.timefmt import to_timestamp
from redis.asyncio import Redis

from tests.api import Api, Tenant, iso, new_tenant, tomorrow_at
from tests.hold_helpers import (
    HOLD_PATH,
    assert_problem,
    catalogue_reads,
    field_errors,
    open_shop,
)
from tests.redis_helpers import stack_redis

HOLD_FIELDS = {"hold_id", "service_id", "location_id", "starts_at", "ends_at", "expires_at"}
HOLD_TTL = timedelta(minutes=10)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- the 201 answer ---------------------------------------------------------------


async def test_hold_answers_201_with_exactly_the_page_fields(tenant: Tenant) -> None:
    shop = await open_shop(tenant, duration_minutes=45)
    starts_at = tomorrow_at(10)
    answer = await shop.hold(await tenant.session_token(), starts_at)
    assert answer.status == 201, answer.body
    assert answer.content_type == "application/json"
    assert set(answer.body) == HOLD_FIELDS
    uuid.UUID(answer.body["hold_id"])
    assert answer.body["service_id"] == shop.service_id
    assert answer.body["location_id"] == shop.location_id


async def test_hold_times_keep_the_pages_offset_form(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    answer = await shop.hold(await tenant.session_token(), tomorrow_at(10))
    assert answer.status == 201, answer.body
    for name in ("starts_at", "ends_at", "expires_at"):
        assert answer.body[name].endswith("+00:00"), answer.body
        assert len(answer.body[name]) == len("2026-03-25T14:00:00+00:00"), answer.body


async def test_hold_ends_after_the_services_duration(tenant: Tenant) -> None:
    shop = await open_shop(tenant, duration_minutes=45)
    starts_at = tomorrow_at(10)
    answer = await shop.hold(await tenant.session_token(), starts_at)
    assert answer.status == 201, answer.body
    assert answer.body["starts_at"] == iso(starts_at)
    assert at(answer.body["ends_at"]) == starts_at + timedelta(minutes=45)


async def test_hold_expires_ten_minutes_after_it_is_placed(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    before = datetime.now(UTC).replace(microsecond=0)
    answer = await shop.hold(token, tomorrow_at(10))
    after = datetime.now(UTC)
    assert answer.status == 201, answer.body
    assert before + HOLD_TTL <= at(answer.body["expires_at"]) <= after + HOLD_TTL


async def test_a_start_given_in_another_offset_is_answered_in_utc(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    starts_at = tomorrow_at(10)
    shifted = (starts_at + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
    answer = await shop.hold(await tenant.session_token(), shifted)
    assert answer.status == 201, answer.body
    assert answer.body["starts_at"] == iso(starts_at)
    assert_problem(await shop.hold(await tenant.session_token(), starts_at), 409)


async def test_hold_with_a_staff_member_adds_staff_id(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=1)
    answer = await shop.hold(await tenant.session_token(), tomorrow_at(10))
    assert answer.status == 201, answer.body
    assert set(answer.body) == HOLD_FIELDS | {"staff_id"}
    assert answer.body["staff_id"] == shop.staff[0]["id"]


# --- no slot ever double-held -----------------------------------------------------


async def test_two_hundred_clients_racing_for_one_slot_get_exactly_one_hold(
    tenant: Tenant,
) -> None:
    shop = await open_shop(tenant)
    tokens = await shop.sessions(200)
    starts_at = tomorrow_at(11)
    answers = await asyncio.gather(*(shop.hold(token, starts_at) for token in tokens))
    statuses = sorted(a.status for a in answers)
    odd = [a.body for a in answers if a.status not in (201, 409)]
    assert statuses == [201] + [409] * 199, (Counter(statuses), odd[:3])
    for answer in answers:
        if answer.status == 409:
            assert answer.content_type == "application/problem+json"
            assert answer.body["status"] == 409


async def test_a_burst_of_holds_while_redis_is_slow_waits_instead_of_failing(
    stack: LocalStack, tenant: Tenant
) -> None:
    shop = await open_shop(tenant, location={"opening_hours": _AROUND_THE_CLOCK})
    tokens = await shop.sessions(20)
    assert (await shop.hold(tokens[0], tomorrow_at(0))).status == 201  # catalogue cached
    # The busy script's own answer may take longer than redis-py's default read timeout on
    # a loaded machine; only the holds' answers are under test.
    redis = Redis.from_url(stack.env["REDIS_URL"], socket_timeout=120)
    try:
        # A busy script keeps Redis from answering for about a second, so the holds pile up
        # in hold-service, more of them at once than it keeps connections to Redis.
        busy = asyncio.ensure_future(redis.eval("for i = 1, 300000000 do end return 1", 0))
        await asyncio.sleep(0.05)
        answers = await asyncio.gather(
            *(
                shop.hold(tokens[index % 20], tomorrow_at(0) + timedelta(minutes=30 * index))
                for index in range(1, 301)
            )
        )
        await busy
    finally:
        await redis.aclose()
    statuses = Counter(a.status for a in answers)
    assert statuses == {201: 300}, (statuses, [a.body for a in answers if a.status != 201][:2])


async def test_racing_clients_of_a_staffed_service_never_share_a_staff_member(
    tenant: Tenant,
) -> None:
    shop = await open_shop(tenant, staff=3)
    tokens = await shop.sessions(60)
    answers = await asyncio.gather(*(shop.hold(token, tomorrow_at(11)) for token in tokens))
    held = [a.body["staff_id"] for a in answers if a.status == 201]
    assert sorted(held) == sorted(member["id"] for member in shop.staff)
    assert sorted(a.status for a in answers).count(409) == 57


async def test_another_session_asking_for_a_held_slot_gets_409_problem(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    first, second = await shop.sessions(2)
    assert (await shop.hold(first, tomorrow_at(10))).status == 201
    body = assert_problem(await shop.hold(second, tomorrow_at(10)), 409)
    assert body["title"] and body["detail"] and body["type"].startswith("https://")


async def test_second_hold_on_overlapping_interval_gets_409(tenant: Tenant) -> None:
    shop = await open_shop(tenant, duration_minutes=60)
    first, second = await shop.sessions(2)
    assert (await shop.hold(first, tomorrow_at(10))).status == 201
    assert_problem(await shop.hold(second, tomorrow_at(10, 30)), 409)


async def test_hold_ending_inside_another_hold_gets_409(tenant: Tenant) -> None:
    shop = await open_shop(tenant, duration_minutes=60)
    first, second = await shop.sessions(2)
    assert (await shop.hold(first, tomorrow_at(11))).status == 201
    assert_problem(await shop.hold(second, tomorrow_at(10, 5)), 409)


async def test_hold_right_after_another_hold_ends_is_placed(tenant: Tenant) -> None:
    shop = await open_shop(tenant, duration_minutes=60)
    first, second, third = await shop.sessions(3)
    assert (await shop.hold(first, tomorrow_at(11))).status == 201
    assert (await shop.hold(second, tomorrow_at(12))).status == 201
    assert (await shop.hold(third, tomorrow_at(10))).status == 201


async def test_buffer_minutes_extend_the_blocked_interval(tenant: Tenant) -> None:
    shop = await open_shop(tenant, duration_minutes=30, buffer_minutes=15)
    first, second = await shop.sessions(2)
    assert (await shop.hold(first, tomorrow_at(10))).status == 201
    assert_problem(await shop.hold(second, tomorrow_at(10, 40)), 409)
    assert (await shop.hold(second, tomorrow_at(10, 45))).status == 201


async def test_buffer_also_keeps_an_earlier_slot_from_running_into_a_hold(
    tenant: Tenant,
) -> None:
    shop = await open_shop(tenant, duration_minutes=30, buffer_minutes=15)
    first, second = await shop.sessions(2)
    assert (await shop.hold(first, tomorrow_at(11))).status == 201
    assert_problem(await shop.hold(second, tomorrow_at(10, 20)), 409)
    assert (await shop.hold(second, tomorrow_at(10, 15))).status == 201


async def test_two_services_without_staff_are_held_independently(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    other = await tenant.service([shop.location_id])
    first, second = await shop.sessions(2)
    assert (await shop.hold(first, tomorrow_at(10))).status == 201
    answer = await shop.hold(second, tomorrow_at(10), service_id=other["id"])
    assert answer.status == 201, answer.body
    assert "staff_id" not in answer.body


async def test_same_session_asking_again_gets_the_same_hold_back(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    first = await shop.hold(token, tomorrow_at(10))
    again = await shop.hold(token, tomorrow_at(10))
    assert first.status == 201, first.body
    assert again.status == 201, again.body
    assert again.body == first.body


async def test_same_session_asking_again_without_staff_id_keeps_its_staff_member(
    tenant: Tenant,
) -> None:
    shop = await open_shop(tenant, staff=4)
    token = await tenant.session_token()
    first = await shop.hold(token, tomorrow_at(10))
    repeats = [await shop.hold(token, tomorrow_at(10)) for _ in range(6)]
    assert first.status == 201, first.body
    assert all(again.body == first.body for again in repeats), repeats


async def test_same_session_asking_for_an_overlapping_slot_gets_409(tenant: Tenant) -> None:
    shop = await open_shop(tenant, duration_minutes=60)
    token = await tenant.session_token()
    assert (await shop.hold(token, tomorrow_at(10))).status == 201
    assert_problem(await shop.hold(token, tomorrow_at(10, 30)), 409)


async def test_holds_still_work_after_redis_forgets_its_scripts(
    stack: LocalStack, tenant: Tenant
) -> None:
    shop = await open_shop(tenant)
    first, second = await shop.sessions(2)
    assert (await shop.hold(first, tomorrow_at(10))).status == 201
    async with stack_redis(stack) as redis:
        await redis.script_flush()
    assert (await shop.hold(first, tomorrow_at(12))).status == 201
    assert_problem(await shop.hold(second, tomorrow_at(10)), 409)


# --- expiry and release -----------------------------------------------------------


@pytest.fixture(scope="module")
async def short_hold_service(stack: LocalStack) -> AsyncIterator[hold_pb2_grpc.HoldServiceStub]:
    """A second hold-service on the same Redis whose holds live one second."""
    port = free_port()
    process = ManagedProcess(
        "hold-service-short-ttl",
        [sys.executable, "-m", "hold_service"],
        stack.state_dir / "logs" / "hold-service-short-ttl.log",
        env={**stack.env, "HOLD_TTL_SECONDS": "1", "HOLD_SERVICE_PORT": str(port)},
    )
    channel = rpc.open_channel(f"127.0.0.1:{port}")
    try:
        wait_for_port(port, 60, process)
        yield hold_pb2_grpc.HoldServiceStub(channel)
    finally:
        await channel.close(None)
        process.stop()


async def test_expired_hold_frees_the_slot(
    short_hold_service: hold_pb2_grpc.HoldServiceStub, tenant: Tenant
) -> None:
    shop = await open_shop(tenant)
    starts_at = tomorrow_at(10)
    short = await rpc.unary(
        short_hold_service.PlaceHold,
        hold_pb2.PlaceHoldRequest(
            business_id=tenant.business_id,
            holder_id="short-lived-holder",
            service_id=shop.service_id,
            location_id=shop.location_id,
            starts_at=to_timestamp(starts_at),
        ),
    )
    token = await tenant.session_token()
    assert_problem(await shop.hold(token, starts_at), 409)
    await asyncio.sleep(max(0.0, short.expires_at.ToDatetime(UTC).timestamp() - _now()) + 0.5)
    answer = await shop.hold(token, starts_at)
    assert answer.status == 201, answer.body


def _now() -> float:
    return datetime.now(UTC).timestamp()


async def test_released_hold_frees_the_slot(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    first, second = await shop.sessions(2)
    held = await shop.hold(first, tomorrow_at(10))
    assert_problem(await shop.hold(second, tomorrow_at(10)), 409)
    released = await shop.release(first, held.body["hold_id"])
    assert released.status == 204, released.body
    assert (await shop.hold(second, tomorrow_at(10))).status == 201


async def test_another_session_of_the_business_releasing_a_hold_gets_404(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    first, second = await shop.sessions(2)
    held = await shop.hold(first, tomorrow_at(10))
    assert_problem(await shop.release(second, held.body["hold_id"]), 404)
    assert_problem(await shop.hold(second, tomorrow_at(10)), 409)


async def test_the_business_key_may_release_a_sessions_hold(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    held = await shop.hold(token, tomorrow_at(10))
    assert (await shop.release(tenant.business_key, held.body["hold_id"])).status == 204
    assert (await shop.hold(await tenant.session_token(), tomorrow_at(10))).status == 201


async def test_the_hub_key_may_release_a_hold_of_its_business(api: Api, tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    held = await shop.hold(await tenant.session_token(), tomorrow_at(10))
    released = await api.delete(
        f"{HOLD_PATH}/{held.body['hold_id']}",
        tenant.hub_key,
        headers={"Calendence-Business": tenant.business_id},
    )
    assert released.status == 204, released.body


async def test_another_business_releasing_a_hold_gets_404(
    api: Api, hub: dict[str, str], tenant: Tenant
) -> None:
    shop = await open_shop(tenant)
    held = await shop.hold(await tenant.session_token(), tomorrow_at(10))
    stranger = await new_tenant(api, hub["key"])
    for key in (stranger.business_key, await stranger.session_token()):
        assert_problem(await shop.release(key, held.body["hold_id"]), 404)
    assert_problem(await shop.hold(await tenant.session_token(), tomorrow_at(10)), 409)


async def test_releasing_a_hold_twice_gets_404(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    held = await shop.hold(token, tomorrow_at(10))
    assert (await shop.release(token, held.body["hold_id"])).status == 204
    assert_problem(await shop.release(token, held.body["hold_id"]), 404)


async def test_releasing_an_unknown_or_malformed_hold_id_gets_404(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    assert_problem(await shop.release(token, str(uuid.uuid4())), 404)
    assert_problem(await shop.release(token, "not-a-uuid"), 404)


# --- staff ------------------------------------------------------------------------


async def test_holds_at_the_same_time_are_given_different_staff(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=2)
    first, second = await shop.sessions(2)
    one = await shop.hold(first, tomorrow_at(10))
    two = await shop.hold(second, tomorrow_at(10))
    assert one.status == two.status == 201, (one.body, two.body)
    assert {one.body["staff_id"], two.body["staff_id"]} == {m["id"] for m in shop.staff}


async def test_hold_when_every_qualified_staff_member_is_busy_gets_409(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=2)
    tokens = await shop.sessions(3)
    assert (await shop.hold(tokens[0], tomorrow_at(10))).status == 201
    assert (await shop.hold(tokens[1], tomorrow_at(10, 15))).status == 201
    assert_problem(await shop.hold(tokens[2], tomorrow_at(10, 5)), 409)


async def test_staff_without_the_service_are_never_assigned(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=1)
    other = await tenant.service([shop.location_id])
    await tenant.staff([other["id"]], [shop.location_id])
    first, second = await shop.sessions(2)
    assert (await shop.hold(first, tomorrow_at(10))).status == 201
    assert_problem(await shop.hold(second, tomorrow_at(10)), 409)


async def test_staff_outside_their_hours_are_never_assigned(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=1)
    mornings = {day: [{"opens": "06:00", "closes": "09:00"}] for day in _WEEKDAYS}
    await tenant.staff([shop.service_id], [shop.location_id], weekly_hours=mornings)
    first, second = await shop.sessions(2)
    assert (await shop.hold(first, tomorrow_at(12))).status == 201
    assert_problem(await shop.hold(second, tomorrow_at(12)), 409)


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


async def consume(stack: LocalStack, tenant: Tenant, hold_id: str) -> None:
    """What creating a booking does to a hold, straight on the stack's hold-service."""
    channel = rpc.open_channel(stack.env["HOLD_SERVICE_ADDR"])
    try:
        await rpc.unary(
            hold_pb2_grpc.HoldServiceStub(channel).ConsumeHold,
            hold_pb2.ConsumeHoldRequest(
                business_id=tenant.business_id,
                hold_id=hold_id,
                booking_id=str(uuid.uuid4()),
                pending_ms=20_000,
            ),
        )
    finally:
        await channel.close(None)


async def test_the_least_booked_staff_member_that_day_is_assigned(
    stack: LocalStack, tenant: Tenant
) -> None:
    shop = await open_shop(tenant, staff=2)
    tokens = await shop.sessions(3)
    booked = await shop.hold(tokens[0], tomorrow_at(10))
    await consume(stack, tenant, booked.body["hold_id"])
    later = [
        await shop.hold(tokens[1], tomorrow_at(13)),
        await shop.hold(tokens[2], tomorrow_at(14)),
    ]
    assert [a.status for a in later] == [201, 201], [a.body for a in later]
    assert {a.body["staff_id"] for a in later} == {
        m["id"] for m in shop.staff if m["id"] != booked.body["staff_id"]
    }


async def test_same_session_keeps_its_staff_member_after_bookings_change_the_order(
    stack: LocalStack, tenant: Tenant
) -> None:
    shop = await open_shop(tenant, staff=2)
    mine, other = await shop.sessions(2)
    first = await shop.hold(mine, tomorrow_at(10))
    booked = await shop.hold(other, tomorrow_at(14), staff_id=first.body["staff_id"])
    await consume(stack, tenant, booked.body["hold_id"])
    again = await shop.hold(mine, tomorrow_at(10))
    assert again.status == 201, again.body
    assert again.body == first.body


async def test_hold_with_staff_id_holds_that_staff_member(tenant: Tenant) -> None:
    shop = await open_shop(tenant, staff=3)
    chosen = shop.staff[2]["id"]
    answer = await shop.hold(await tenant.session_token(), tomorrow_at(10), staff_id=chosen)
    assert answer.status == 201, answer.body
    assert answer.body["staff_id"] == chosen


async def test_hold_with_a_busy_staff_id_gets_409_even_when_others_are_free(
    tenant: Tenant,
) -> None:
    shop = await open_shop(tenant, staff=2)
    first, second = await shop.sessions(2)
    chosen = shop.staff[0]["id"]
    assert (await shop.hold(first, tomorrow_at(10), staff_id=chosen)).status == 201
    assert_problem(await shop.hold(second, tomorrow_at(10), staff_id=chosen), 409)


async def test_a_staff_hold_blocks_that_person_for_other_services(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    other = await tenant.service([shop.location_id])
    member = await tenant.staff([shop.service_id, other["id"]], [shop.location_id])
    first, second = await shop.sessions(2)
    assert (await shop.hold(first, tomorrow_at(10))).body["staff_id"] == member["id"]
    assert_problem(await shop.hold(second, tomorrow_at(10), service_id=other["id"]), 409)


async def test_service_without_staff_holds_the_location_and_service(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    first, second = await shop.sessions(2)
    answer = await shop.hold(first, tomorrow_at(10))
    assert answer.status == 201, answer.body
    assert "staff_id" not in answer.body
    assert_problem(await shop.hold(second, tomorrow_at(10)), 409)


# --- 422 per field ----------------------------------------------------------------


async def test_hold_without_a_body_names_each_missing_field(api: Api, tenant: Tenant) -> None:
    errors = field_errors(await api.post(HOLD_PATH, await tenant.session_token(), {}))
    assert set(errors) == {"service_id", "location_id", "starts_at"}


async def test_hold_with_an_empty_body_is_422(api: Api, tenant: Tenant) -> None:
    answer = await api.post(HOLD_PATH, await tenant.session_token(), data=b"")
    assert "body" in field_errors(answer)


async def test_hold_with_invalid_json_is_422(api: Api, tenant: Tenant) -> None:
    answer = await api.post(
        HOLD_PATH,
        await tenant.session_token(),
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert "body" in field_errors(answer)


@pytest.mark.parametrize("field", ["service_id", "location_id", "staff_id"])
async def test_hold_with_a_malformed_uuid_names_that_field(tenant: Tenant, field: str) -> None:
    shop = await open_shop(tenant, staff=1)
    body = shop.hold_body(tomorrow_at(10), **{field: "not-a-uuid"})
    errors = field_errors(await tenant.api.post(HOLD_PATH, await tenant.session_token(), body))
    assert set(errors) == {field}


async def test_hold_with_an_unknown_field_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    errors = field_errors(await shop.hold(await tenant.session_token(), tomorrow_at(10), note="x"))
    assert set(errors) == {"note"}


async def test_hold_with_a_starts_at_without_offset_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    naive = tomorrow_at(10).replace(tzinfo=None).isoformat()
    errors = field_errors(await shop.hold(await tenant.session_token(), naive))
    assert set(errors) == {"starts_at"}


async def test_hold_with_an_unparsable_starts_at_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    errors = field_errors(await shop.hold(await tenant.session_token(), "tomorrow at ten"))
    assert set(errors) == {"starts_at"}


async def test_hold_in_the_past_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant, location={"opening_hours": _AROUND_THE_CLOCK})
    past = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    errors = field_errors(await shop.hold(await tenant.session_token(), past))
    assert set(errors) == {"starts_at"}


_AROUND_THE_CLOCK = {day: [{"opens": "00:00", "closes": "24:00"}] for day in _WEEKDAYS}


async def test_hold_off_a_five_minute_boundary_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    for starts_at in (tomorrow_at(10, 3), tomorrow_at(10).replace(second=30)):
        errors = field_errors(await shop.hold(token, starts_at))
        assert set(errors) == {"starts_at"}


async def test_hold_outside_the_locations_hours_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    # 03:00 UTC is before 09:00 in London; 16:45 UTC runs past 17:00 either way.
    for starts_at in (tomorrow_at(3), tomorrow_at(16, 45)):
        errors = field_errors(await shop.hold(token, starts_at))
        assert set(errors) == {"starts_at"}, (starts_at, errors)


async def test_location_hours_are_read_in_the_locations_time_zone(tenant: Tenant) -> None:
    shop = await open_shop(tenant, location={"timezone": "Asia/Tokyo"})
    token = await tenant.session_token()
    # 09:00-17:00 in Tokyo is 00:00-08:00 UTC.
    assert (await shop.hold(token, tomorrow_at(1))).status == 201
    assert set(field_errors(await shop.hold(token, tomorrow_at(10)))) == {"starts_at"}


async def test_hold_outside_the_staff_members_hours_is_422(tenant: Tenant) -> None:
    early = {day: [{"opens": "06:00", "closes": "09:00"}] for day in _WEEKDAYS}
    shop = await open_shop(tenant, staff=1, staff_overrides={"weekly_hours": early})
    token = await tenant.session_token()
    chosen = shop.staff[0]["id"]
    assert set(field_errors(await shop.hold(token, tomorrow_at(12), staff_id=chosen))) == {
        "starts_at"
    }
    assert set(field_errors(await shop.hold(token, tomorrow_at(12)))) == {"starts_at"}


async def test_hold_of_a_service_not_offered_at_the_location_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    elsewhere = await tenant.location()
    body = shop.hold_body(tomorrow_at(10), location_id=elsewhere["id"])
    errors = field_errors(await tenant.api.post(HOLD_PATH, await tenant.session_token(), body))
    assert set(errors) == {"location_id"}


async def test_hold_with_a_staff_member_not_doing_the_service_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    other = await tenant.service([shop.location_id])
    member = await tenant.staff([other["id"]], [shop.location_id])
    answer = await shop.hold(await tenant.session_token(), tomorrow_at(10), staff_id=member["id"])
    assert set(field_errors(answer)) == {"staff_id"}


async def test_hold_with_a_staff_member_of_another_location_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    elsewhere = await tenant.location()
    member = await tenant.staff([shop.service_id], [elsewhere["id"]])
    answer = await shop.hold(await tenant.session_token(), tomorrow_at(10), staff_id=member["id"])
    assert set(field_errors(answer)) == {"staff_id"}


async def test_hold_of_an_inactive_service_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant, active=False)
    errors = field_errors(await shop.hold(await tenant.session_token(), tomorrow_at(10)))
    assert set(errors) == {"service_id"}


async def test_hold_of_a_service_just_made_inactive_is_422_at_once(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    assert (await shop.hold(token, tomorrow_at(10))).status == 201
    patched = await tenant.api.patch(
        f"/api/v1/services/{shop.service_id}", tenant.business_key, {"active": False}
    )
    assert patched.status == 200, patched.body["errors"]
    deadline = asyncio.get_running_loop().time() + 1.0
    while True:
        answer = await shop.hold(token, tomorrow_at(12))
        if answer.status == 422 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert set(field_errors(answer)) == {"service_id"}


async def test_a_burst_of_holds_on_a_cold_catalogue_reads_it_once(
    stack: LocalStack, tenant: Tenant
) -> None:
    shop = await open_shop(tenant)
    tokens = await shop.sessions(50)
    async with catalogue_reads(stack.env["NATS_URL"], tenant.business_id) as reads:
        answers = await asyncio.gather(*(shop.hold(token, tomorrow_at(10)) for token in tokens))
    assert sorted(a.status for a in answers) == [201] + [409] * 49
    assert len(reads) == 1, reads


async def test_hold_of_a_service_deleted_meanwhile_is_422(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    assert (await shop.hold(token, tomorrow_at(10))).status == 201
    deleted = await tenant.api.delete(f"/api/v1/services/{shop.service_id}", tenant.business_key)
    assert deleted.status == 204, deleted.body
    await asyncio.sleep(0.5)
    assert set(field_errors(await shop.hold(token, tomorrow_at(12)))) == {"service_id"}


@pytest.mark.parametrize("field", ["service_id", "location_id", "staff_id"])
async def test_hold_naming_another_businesses_id_is_422_without_its_details(
    api: Api, hub: dict[str, str], tenant: Tenant, field: str
) -> None:
    shop = await open_shop(tenant, staff=1)
    stranger = await new_tenant(api, hub["key"])
    theirs = await open_shop(
        stranger, staff=1, name="Secret Service", location={"name": "Secret Place"}
    )
    ids = {
        "service_id": theirs.service_id,
        "location_id": theirs.location_id,
        "staff_id": theirs.staff[0]["id"],
    }
    body = shop.hold_body(tomorrow_at(10), **{field: ids[field]})
    answer = await api.post(HOLD_PATH, await tenant.session_token(), body)
    assert set(field_errors(answer)) == {field}
    assert "Secret" not in str(answer.body)
    assert theirs.staff[0]["name"] not in str(answer.body)


async def test_hold_of_unknown_ids_is_422_naming_them(tenant: Tenant) -> None:
    body = {
        "service_id": str(uuid.uuid4()),
        "location_id": str(uuid.uuid4()),
        "starts_at": iso(tomorrow_at(10)),
    }
    answer = await tenant.api.post(HOLD_PATH, await tenant.session_token(), body)
    assert set(field_errors(answer)) == {"service_id", "location_id"}


async def test_hold_without_a_key_is_401(api: Api) -> None:
    assert_problem(await api.post(HOLD_PATH, None, {}), 401)


async def test_the_business_key_may_hold_a_slot(tenant: Tenant) -> None:
    shop = await open_shop(tenant)
    answer = await shop.hold(tenant.business_key, tomorrow_at(10))
    assert answer.status == 201, answer.body
