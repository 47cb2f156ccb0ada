"""A reschedule's claims in Redis, step by step, on the stack's Redis: what hold-service's
scripts leave behind when two moves of one booking overlap in time, which the API
alone cannot line up on demand.

A booking at X is moved to A (committed, not yet confirmed), then to B; the first
move's confirmation arrives only after the second move claimed B.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from calendence.devstack.stack import LocalStack
from hold_service.hold_repository import (
    Confirmation,
    HoldRepository,
    Interval,
    booking_value,
    granule_key,
)

from tests.redis_helpers import stack_redis

GRANULE_MS = 5 * 60 * 1000
# Far enough ahead that nothing of the test lapses while it runs.
FIRST_GRANULE = int(time.time() * 1000) // GRANULE_MS + 10_000
X = range(FIRST_GRANULE, FIRST_GRANULE + 6)
A = range(FIRST_GRANULE + 4, FIRST_GRANULE + 10)
B = range(FIRST_GRANULE + 20, FIRST_GRANULE + 26)


def _interval(granules: range) -> Interval:
    return Interval(granules.start * GRANULE_MS, granules.stop * GRANULE_MS)


def _outside(granules: range, *others: range) -> list[int]:
    return [g for g in granules if not any(g in other for other in others)]


@pytest.fixture
async def repository(stack: LocalStack) -> AsyncIterator[HoldRepository]:
    async with stack_redis(stack) as redis:
        yield HoldRepository(redis)


async def _moved_from_x_to_a(repository: HoldRepository) -> tuple[str, str]:
    """A new booking's claim at X, lasting until X ends, then moved to A (the first step,
    as before its commit); the booking's resource and id."""
    resource, booking = f"test:{uuid.uuid4()}", str(uuid.uuid4())
    [confirmed] = await repository.confirm_many(
        [Confirmation(resource, "hold", X, booking, _interval(X).blocked_ms, force=True)]
    )
    assert confirmed is True
    await _moved(repository, resource, booking, X, A)
    return resource, booking


async def _moved(
    repository: HoldRepository, resource: str, booking: str, old: range, new: range
) -> None:
    moved = await repository.move_booking(
        resource,
        booking,
        new=new,
        stale=[],
        moved_from=_interval(old),
        pending_ms=60_000,
        now_ms=int(time.time() * 1000),
    )
    assert moved


async def _confirmed(
    repository: HoldRepository, resource: str, booking: str, old: range, new: range
) -> None:
    """The confirmation of the move from `old` to `new`, as booking-service sends it."""
    [confirmed] = await repository.confirm_many(
        [
            Confirmation(
                resource,
                "hold",
                new,
                booking,
                _interval(new).blocked_ms,
                force=False,
                released=_outside(old, new),
                moved_from=_interval(old),
            )
        ]
    )
    assert confirmed is True


async def test_a_late_confirmation_of_a_move_keeps_the_record_of_the_next_move(
    repository: HoldRepository,
) -> None:
    resource, booking = await _moved_from_x_to_a(repository)
    await _moved(repository, resource, booking, A, B)
    await _confirmed(repository, resource, booking, X, A)
    # The second move, should its process die after its commit, still tells the repair
    # that A is to be freed.
    assert await repository.moves_under_way([(resource, booking)]) == [_interval(A)]


async def test_a_confirmation_frees_the_old_time_and_forgets_its_move(
    repository: HoldRepository,
) -> None:
    resource, booking = await _moved_from_x_to_a(repository)
    await _confirmed(repository, resource, booking, X, A)
    assert await repository.moves_under_way([(resource, booking)]) == [None]
    held = await repository.redis.mget([granule_key(resource, g) for g in range(X.start, A.stop)])
    mine = booking_value(booking).encode()
    assert [value == mine for value in held] == [g in A for g in range(X.start, A.stop)]
