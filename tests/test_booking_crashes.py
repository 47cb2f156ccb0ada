"""A crash of booking-service between taking a slot in Redis and committing the booking
in PostgreSQL never strands the slot, and never takes the slot from a committed booking;
nor does a release whose slot hold-service could not free at the time, nor a crash at
either step of a reschedule (its new time claimed before the commit, confirmed after).

booking-service is restarted with BOOKING_FAULT_PAUSE_AT, so each booking (or
cancellation, or reschedule) hangs at the named point; the test kills it there with
SIGKILL, as a crash would, and restarts it as it normally runs. The crashed process was
started with a pending claim of PENDING_CLAIM_SECONDS=10 (the default is 20): the same
mechanism, a shorter wait.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from calendence.devstack.stack import LocalStack

from tests.api import Answer, created, tomorrow_at
from tests.booking_helpers import JANE, Salon
from tests.redis_helpers import claim_lifetimes

PENDING_CLAIM_SECONDS = 10
# The promise: a slot whose booking did not commit can be held again this soon.
RELEASED_WITHIN_SECONDS = 30


def _restart_booking_service(stack: LocalStack, extra_env: dict[str, str]) -> None:
    running = stack.services["booking-service"]
    if running.running():
        running.stop()
    stack.start_service("booking-service", extra_env)
    stack.wait_until_ready()


class Crash:
    """booking-service paused at one point: start a booking, then kill -9 it there."""

    def __init__(self, stack: LocalStack, point: str) -> None:
        self.stack = stack
        self.point = point
        self.log_path = stack.state_dir / "logs" / "booking-service.log"
        self.log_offset = self.log_path.stat().st_size
        self.killed_at = 0.0
        self.restarted = False

    async def booking_killed_at_the_point(
        self, salon: Salon, token: str, hold_id: str, key: str | None = None
    ) -> Answer:
        headers = {"Idempotency-Key": key} if key else {}
        return await self.killed_at_the_point(
            salon.tenant.api.post(
                "/api/v1/bookings", token, {"hold_id": hold_id, "client": JANE}, headers=headers
            )
        )

    async def killed_at_the_point(self, request: Coroutine[Any, Any, Answer]) -> Answer:
        """The answer to `request`, which booking-service was killed while pausing in."""
        attempt = asyncio.create_task(request)
        await self.paused()
        self.stack.services["booking-service"].kill()
        self.killed_at = time.monotonic()
        return await attempt

    async def paused(self) -> None:
        """Until booking-service logs that it paused at the point."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            logged = self.log_path.read_bytes()[self.log_offset :].decode(errors="replace")
            for line in logged.splitlines():
                if line.startswith("{") and "fault injection" in line:
                    entry = json.loads(line)
                    if entry["msg"] == "fault injection: paused":
                        assert entry["point"] == self.point
                        return
            await asyncio.sleep(0.05)
        raise AssertionError(f"booking-service never paused at {self.point}")

    async def restart(self, env: dict[str, str] | None = None) -> None:
        """Start booking-service again as it normally runs (or with `env`: then it is
        restarted as it normally runs once the test is over)."""
        await asyncio.to_thread(_restart_booking_service, self.stack, env or {})
        self.restarted = not env


@asynccontextmanager
async def crashable_booking_service(
    stack: LocalStack,
    pause_at: str = "",
    *,
    pending_claim_seconds: int | None = PENDING_CLAIM_SECONDS,
    pause_seconds: float = 0.0,
) -> AsyncIterator[Crash]:
    """booking-service pausing every booking at `pause_at` (if given; for
    `pause_seconds`, or until killed), with short pending claims unless told otherwise;
    the test kills it (or not) and restarts it as it normally runs."""
    env = {"BOOKING_FAULT_PAUSE_AT": pause_at, "BOOKING_FAULT_PAUSE_SECONDS": str(pause_seconds)}
    if pending_claim_seconds is not None:
        env["PENDING_CLAIM_SECONDS"] = str(pending_claim_seconds)
    await asyncio.to_thread(_restart_booking_service, stack, env)
    crash = Crash(stack, pause_at)
    try:
        yield crash
    finally:
        if not crash.restarted:  # the test failed early: never leave the faulty one
            stack.services["booking-service"].kill()
            await crash.restart()


async def _sessions(salon: Salon) -> tuple[str, str]:
    """Two session tokens, both known to the gateway: it checks keys with booking-service
    (down after the crash) and then caches them, so both are used once now."""
    tokens = (await salon.tenant.session_token(), await salon.tenant.session_token())
    for token in tokens:
        answer = await salon.tenant.api.get(
            "/api/v1/availability",
            token,
            params={
                "service_id": salon.service_id,
                "location_id": salon.location_id,
                "from": tomorrow_at(9).isoformat(),
                "to": tomorrow_at(17).isoformat(),
            },
        )
        assert answer.status == 200, answer.body
    return tokens


async def _first_hold_after(
    salon: Salon, token: str, starts_at: datetime, since: float
) -> tuple[float, dict[str, Any]]:
    """Seconds from `since` until the session `token` could hold the slot, and the hold."""
    while time.monotonic() - since < RELEASED_WITHIN_SECONDS + 5:
        answer = await salon.hold(token, starts_at)
        if answer.status == 201:
            return time.monotonic() - since, answer.body
        assert answer.status == 409, (answer.status, answer.body)
        await asyncio.sleep(0.5)
    raise AssertionError("the slot was never released")


async def _bookings(salon: Salon) -> list[dict[str, Any]]:
    listed = await salon.tenant.api.get("/api/v1/bookings", salon.tenant.business_key)
    data: list[dict[str, Any]] = listed.body["data"]
    return data


@pytest.mark.parametrize("point", ["after_consume", "before_commit"])
async def test_a_crash_before_commit_frees_the_slot_within_30_seconds(
    stack: LocalStack, salon: Salon, point: str
) -> None:
    token, other = await _sessions(salon)
    hold = created(await salon.hold(token, tomorrow_at(10)))
    async with crashable_booking_service(stack, pause_at=point) as crash:
        answer = await crash.booking_killed_at_the_point(salon, token, hold["hold_id"])
        assert answer.status == 503, (answer.status, answer.body)
        # The claim outlived the process that took it...
        refused = await salon.hold(other, tomorrow_at(10))
        assert refused.status == 409, refused.body
        await crash.restart()
        # ...and lapses by itself: nothing was committed behind it.
        waited, _ = await _first_hold_after(salon, other, tomorrow_at(10), crash.killed_at)
    assert waited <= RELEASED_WITHIN_SECONDS
    assert await _bookings(salon) == []


async def test_a_crash_right_after_commit_keeps_the_bookings_claim(
    stack: LocalStack, salon: Salon
) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(11)))
    async with crashable_booking_service(stack, pause_at="after_commit") as crash:
        answer = await crash.booking_killed_at_the_point(salon, token, hold["hold_id"])
        assert answer.status == 503, (answer.status, answer.body)
        await crash.restart()
        # Past the moment the pending claim would have lapsed had nothing confirmed it.
        await asyncio.sleep(
            max(0.0, crash.killed_at + PENDING_CLAIM_SECONDS + 3 - time.monotonic())
        )
        other = await salon.hold(await salon.tenant.session_token(), tomorrow_at(11))
        assert other.status == 409, other.body
        lifetimes = await claim_lifetimes(stack, salon.location_id, salon.service_id)
    assert lifetimes
    until_it_ends = (tomorrow_at(11, 30) - datetime.now(UTC)).total_seconds() * 1000
    assert all(ttl > until_it_ends - 60_000 for ttl in lifetimes), lifetimes
    [booking] = await _bookings(salon)
    assert booking["hold_id"] == hold["hold_id"]
    assert booking["status"] == "confirmed"


async def _retried_after_crash(
    stack: LocalStack, salon: Salon, token: str, hold_id: str, pause_at: str
) -> Answer:
    """Book with an Idempotency-Key, crash at `pause_at`, restart, retry with the key.
    The crashed process keeps the default pending claim (20 s), which the retry beats."""
    key = f"checkout-click-{pause_at}"
    async with crashable_booking_service(stack, pause_at, pending_claim_seconds=None) as crash:
        answer = await crash.booking_killed_at_the_point(salon, token, hold_id, key=key)
        assert answer.status == 503, (answer.status, answer.body)
        await crash.restart()
        return await salon.tenant.api.post(
            "/api/v1/bookings",
            token,
            {"hold_id": hold_id, "client": JANE},
            headers={"Idempotency-Key": key},
        )


async def test_a_retry_with_the_same_key_after_a_crash_before_commit_books_the_slot(
    stack: LocalStack, salon: Salon
) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(12)))
    retry = await _retried_after_crash(stack, salon, token, hold["hold_id"], "before_commit")
    booking = created(retry)
    assert [b["id"] for b in await _bookings(salon)] == [booking["id"]]
    other = await salon.hold(await salon.tenant.session_token(), tomorrow_at(12))
    assert other.status == 409, other.body


async def test_a_retry_with_the_same_key_after_a_crash_after_commit_replays_the_booking(
    stack: LocalStack, salon: Salon
) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(13)))
    retry = await _retried_after_crash(stack, salon, token, hold["hold_id"], "after_commit")
    assert retry.status == 201, retry.body
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert [b["id"] for b in await _bookings(salon)] == [retry.body["id"]]


async def test_after_a_kill_during_a_burst_every_slot_is_booked_or_bookable_again(
    stack: LocalStack, salon: Salon
) -> None:
    token, other = await _sessions(salon)
    starts = [tomorrow_at(9 + i // 2, 30 * (i % 2)) for i in range(16)]
    holds = [created(await salon.hold(token, moment))["hold_id"] for moment in starts]
    async with crashable_booking_service(stack) as crash:
        attempts = [asyncio.create_task(salon.book(token, hold_id)) for hold_id in holds]
        # Killed while the burst is in flight: some answered, some not yet.
        await asyncio.wait(attempts, return_when=asyncio.FIRST_COMPLETED)
        stack.services["booking-service"].kill()
        killed_at = time.monotonic()
        answers = await asyncio.gather(*attempts)
        await crash.restart()
    assert {a.status for a in answers} <= {201, 503}
    committed = {b["hold_id"] for b in await _bookings(salon)}
    answered = {hold_id for hold_id, a in zip(holds, answers, strict=True) if a.status == 201}
    assert answered <= committed
    await asyncio.sleep(max(0.0, killed_at + PENDING_CLAIM_SECONDS + 3 - time.monotonic()))
    for hold_id, moment in zip(holds, starts, strict=True):
        if hold_id in committed:
            assert (await salon.hold(other, moment)).status == 409
            continue
        # Not booked: its client holds it again (its hold back, if the booking never
        # reached it; a new one once the crashed booking's claim lapsed) and books it.
        waited, hold = await _first_hold_after(salon, token, moment, killed_at)
        assert waited <= RELEASED_WITHIN_SECONDS
        created(await salon.book(token, hold["hold_id"]))


async def test_a_crash_between_a_cancellations_commit_and_freeing_its_slot_frees_it_at_restart(
    stack: LocalStack, salon: Salon
) -> None:
    booking = await salon.booking(tomorrow_at(12))
    path, key = f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key
    async with crashable_booking_service(stack, pause_at="release_after_commit") as crash:
        answer = await crash.killed_at_the_point(salon.tenant.api.delete(path, key))
        assert answer.status == 503, (answer.status, answer.body)
        await crash.restart()
    assert (await salon.tenant.api.get(path, key)).body["status"] == "cancelled"
    token = await salon.tenant.session_token()
    deadline = time.monotonic() + 10
    while (held := await salon.hold(token, tomorrow_at(12))).status == 409:
        assert time.monotonic() < deadline, "the cancelled booking's slot stayed claimed"
        await asyncio.sleep(0.5)
    assert held.status == 201, held.body


async def _cancelled_while_hold_service_is_down(
    stack: LocalStack, salon: Salon, starts_at: datetime
) -> Answer:
    """The answer to cancelling a booking at `starts_at` while hold-service is stopped;
    hold-service is running again when it returns."""
    booking = await salon.booking(starts_at)
    stack.services["hold-service"].stop()
    try:
        return await salon.tenant.api.delete(
            f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key
        )
    finally:
        stack.start_service("hold-service")
        await asyncio.to_thread(stack.wait_until_ready)


async def test_a_cancellation_while_hold_service_is_down_is_answered_as_done(
    stack: LocalStack, salon: Salon
) -> None:
    cancelled = await _cancelled_while_hold_service_is_down(stack, salon, tomorrow_at(13))
    assert cancelled.status == 200, (cancelled.status, cancelled.body)
    assert cancelled.body["status"] == "cancelled"


async def test_a_cancellation_while_hold_service_is_down_frees_its_slot_once_it_is_back(
    stack: LocalStack, salon: Salon
) -> None:
    token = await salon.tenant.session_token()
    await _cancelled_while_hold_service_is_down(stack, salon, tomorrow_at(13))
    deadline = time.monotonic() + 15
    while (held := await salon.hold(token, tomorrow_at(13))).status == 409:
        assert time.monotonic() < deadline, "the cancelled booking's slot stayed claimed"
        await asyncio.sleep(0.5)
    assert held.status == 201, held.body


async def _rescheduled(salon: Salon, booking_id: str, starts_at: datetime) -> Answer:
    return await salon.tenant.api.patch(
        f"/api/v1/bookings/{booking_id}",
        salon.tenant.business_key,
        {"starts_at": starts_at.isoformat()},
    )


async def _reschedule_killed_at(
    stack: LocalStack, salon: Salon, point: str, booking_id: str, to: datetime
) -> float:
    """Reschedule the booking to `to` with booking-service killed at `point` (answered
    503), then restart it as it normally runs; when it was killed."""
    async with crashable_booking_service(stack, pause_at=point) as crash:
        answer = await crash.killed_at_the_point(_rescheduled(salon, booking_id, to))
        assert answer.status == 503, (answer.status, answer.body)
        await crash.restart()
    return crash.killed_at


async def _starts_at(salon: Salon, booking_id: str) -> str:
    answer = await salon.tenant.api.get(f"/api/v1/bookings/{booking_id}", salon.tenant.business_key)
    starts_at: str = answer.body["starts_at"]
    return starts_at


async def _held_within(salon: Salon, starts_at: datetime, seconds: float) -> None:
    """A new session holds `starts_at` within `seconds`."""
    token = await salon.tenant.session_token()
    since = time.monotonic()
    while (held := await salon.hold(token, starts_at)).status == 409:
        assert time.monotonic() - since < seconds, f"{starts_at} stayed claimed"
        await asyncio.sleep(0.5)
    assert held.status == 201, held.body


async def test_a_crash_before_a_reschedule_commits_keeps_the_booking_and_frees_the_new_time(
    stack: LocalStack, salon: Salon
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    await _reschedule_killed_at(stack, salon, "move_before_commit", booking["id"], tomorrow_at(14))
    assert await _starts_at(salon, booking["id"]) == tomorrow_at(10).isoformat()
    # The booking's own time was never let go...
    refused = await salon.hold(await salon.tenant.session_token(), tomorrow_at(10))
    assert refused.status == 409, refused.body
    # ...and the time it was to move to lapses by itself: the move never committed.
    await _held_within(salon, tomorrow_at(14), RELEASED_WITHIN_SECONDS)


async def test_a_crash_after_a_reschedule_commits_frees_the_old_time_and_keeps_the_new(
    stack: LocalStack, salon: Salon
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    killed_at = await _reschedule_killed_at(
        stack, salon, "move_after_commit", booking["id"], tomorrow_at(14)
    )
    assert await _starts_at(salon, booking["id"]) == tomorrow_at(14).isoformat()
    await _held_within(salon, tomorrow_at(10), RELEASED_WITHIN_SECONDS)
    # Past the moment the new time's pending claim would have lapsed, unconfirmed.
    await asyncio.sleep(max(0.0, killed_at + PENDING_CLAIM_SECONDS + 3 - time.monotonic()))
    refused = await salon.hold(await salon.tenant.session_token(), tomorrow_at(14))
    assert refused.status == 409, refused.body


@asynccontextmanager
async def _move_left_unfinished(
    stack: LocalStack, salon: Salon, booking_id: str, to: datetime
) -> AsyncIterator[None]:
    """The booking rescheduled to `to` with booking-service killed after the commit,
    then run without claim repair in time (the crashed move's claim, 20 s, is not near
    its deadline for one that looks 2 s ahead, and no second round comes), so the move
    is left unfinished in Redis; booking-service runs as it normally does afterwards."""
    async with crashable_booking_service(
        stack, pause_at="move_after_commit", pending_claim_seconds=None
    ) as crash:
        answer = await crash.killed_at_the_point(_rescheduled(salon, booking_id, to))
        assert answer.status == 503, (answer.status, answer.body)
        await crash.restart({"CLAIM_REPAIR_SECONDS": "3600", "PENDING_CLAIM_SECONDS": "4"})
        yield


async def test_a_reschedule_after_one_cut_short_by_a_crash_frees_both_earlier_times(
    stack: LocalStack, salon: Salon
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    async with _move_left_unfinished(stack, salon, booking["id"], tomorrow_at(14)):
        moved = await _rescheduled(salon, booking["id"], tomorrow_at(16))
        assert moved.status == 200, moved.body
        token = await salon.tenant.session_token()
        assert (await salon.hold(token, tomorrow_at(10))).status == 201
        assert (await salon.hold(token, tomorrow_at(14))).status == 201
        assert (await salon.hold(token, tomorrow_at(16))).status == 409


async def test_a_cancellation_after_a_reschedule_cut_short_by_a_crash_frees_both_times(
    stack: LocalStack, salon: Salon
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    async with _move_left_unfinished(stack, salon, booking["id"], tomorrow_at(14)):
        cancelled = await salon.tenant.api.delete(
            f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key
        )
        assert cancelled.status == 200, cancelled.body
        token = await salon.tenant.session_token()
        assert (await salon.hold(token, tomorrow_at(10))).status == 201
        assert (await salon.hold(token, tomorrow_at(14))).status == 201


async def test_a_reschedule_whose_confirmation_hold_service_never_answers_is_answered_as_made(
    stack: LocalStack, salon: Salon
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    async with crashable_booking_service(
        stack, pause_at="move_after_commit", pause_seconds=1.0
    ) as crash:
        moving = asyncio.create_task(_rescheduled(salon, booking["id"], tomorrow_at(14)))
        await crash.paused()  # committed; the confirmation comes after the pause
        with stack.services["hold-service"].frozen():
            moved = await moving
        await crash.restart()
    assert moved.status == 200, (moved.status, moved.body)
    assert moved.body["starts_at"] == tomorrow_at(14).isoformat()
