"""Property-based, against the running platform: for made-up schedules (staff hours
and time off, location hours and closures, a buffer after a slot already held),
around a clock change, every time availability lists can be held and no time it
omits can."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api import Tenant, created, iso
from tests.scheduling_oracle import Schedule, as_json_week, schedules

HOLD = "/api/v1/bookings/hold"
LISTED_TRIED = 24


async def open_schedule(tenant: Tenant, schedule: Schedule) -> tuple[str, str]:
    """The schedule made through the API: (location id, service id)."""
    location = await tenant.location(
        timezone=schedule.zone.key, opening_hours=as_json_week(schedule.location_hours)
    )
    service = await tenant.service(
        [location["id"]],
        duration_minutes=schedule.duration_minutes,
        buffer_minutes=schedule.buffer_minutes,
        # Every granule is a candidate, so what availability omits it refuses.
        booking_policy={"slot_step_minutes": 5},
    )
    for start, end in schedule.closures:
        created(
            await tenant.api.post(
                "/api/v1/time-off",
                tenant.business_key,
                {"location_id": location["id"], "starts_at": iso(start), "ends_at": iso(end)},
            )
        )
    for hours, away in schedule.staff:
        extra = {"weekly_hours": as_json_week(hours)} if hours is not None else {}
        member = await tenant.staff([service["id"]], [location["id"]], **extra)
        for start, end in away:
            created(
                await tenant.api.post(
                    "/api/v1/time-off",
                    tenant.business_key,
                    {"staff_id": member["id"], "starts_at": iso(start), "ends_at": iso(end)},
                )
            )
    return location["id"], service["id"]


@settings(
    max_examples=6,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    schedule=schedules(first_day=datetime.now(UTC).date(), window_hours=8, lead_hours=6, changes=1),
    prior_hold=st.floats(0, 1),
    pick=st.randoms(use_true_random=False),
)
async def test_listed_times_can_be_held_and_omitted_ones_cannot(
    tenant: Tenant, schedule: Schedule, prior_hold: float, pick: Random
) -> None:
    api, key = tenant.api, tenant.business_key
    location_id, service_id = await open_schedule(tenant, schedule)
    query = {
        "service_id": service_id,
        "location_id": location_id,
        "from": iso(schedule.window_start),
        "to": iso(schedule.window_end),
    }

    async def listed() -> list[str]:
        """Listed starts, in UTC (the answer writes them in the location's offset)."""
        answer = await api.get("/api/v1/availability", key, params=query)
        assert answer.status == 200, answer.body
        return [
            iso(datetime.fromisoformat(s["starts_at"]).astimezone(UTC))
            for s in answer.body["slots"]
        ]

    def hold_body(starts_at: str) -> dict[str, str]:
        return {"service_id": service_id, "location_id": location_id, "starts_at": starts_at}

    before = await listed()
    if before:
        # A slot someone else holds: its buffer must be respected around it too.
        taken = before[int(prior_hold * (len(before) - 1))]
        created(await api.post(HOLD, await tenant.session_token(), hold_body(taken)))
    offered = await listed()
    everything = [
        iso(schedule.window_start + timedelta(minutes=5 * n))
        for n in range(int((schedule.window_end - schedule.window_start) / timedelta(minutes=5)))
    ]
    token = await tenant.session_token()
    # Listed times overlap one another, so they are tried one by one: a drawn sample
    # of them (each is held and given back), and every omitted one (all at once).
    for starts_at in pick.sample(offered, min(LISTED_TRIED, len(offered))):
        answer = await api.post(HOLD, token, hold_body(starts_at))
        assert answer.status == 201, (starts_at, answer.body)
        assert (await api.delete(f"{HOLD}/{answer.body['hold_id']}", token)).status == 204
    omitted = sorted(set(everything) - set(offered))
    answers = await asyncio.gather(*(api.post(HOLD, token, hold_body(s)) for s in omitted))
    for starts_at, answer in zip(omitted, answers, strict=True):
        assert answer.status in (409, 422), (starts_at, answer.status, answer.body)
