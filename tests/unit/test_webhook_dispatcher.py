"""The webhook dispatcher's bookkeeping: where the stream watermark moves, and the
room of a replica shared between the claims stores of events make and its own loop's.

The deliveries come from an in-memory supply standing in for the repository, so that
a store and a claim can be held at a chosen moment; what PostgreSQL does with a claim
is the live suite's (tests/test_webhooks.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import cast

from notify_service.delivery_repository import (
    AttemptResult,
    Claim,
    ClaimTurn,
    DeliveryRepository,
    Finished,
    StoredEvents,
)
from notify_service.dispatcher import Dispatcher, Limits, watermark_past


def test_the_watermark_moves_past_stored_positions_that_continue_it() -> None:
    assert watermark_past(5, {5, 6, 8}) == 7
    assert watermark_past(5, {6, 7}) == 5
    assert watermark_past(5, set()) == 5


def test_a_watermark_not_known_yet_stays_unknown() -> None:
    assert watermark_past(0, {0, 1, 2}) == 0


def _claims(count: int) -> list[Claim]:
    return [
        Claim(
            delivery_id=uuid.uuid4(),
            endpoint_id=uuid.uuid4(),
            event_id=uuid.uuid4(),
            attempt=1,
            lease_token=uuid.uuid4(),
            url="https://example.com/hook",
            signing_secrets=("whsec_test",),
            body=b"{}",
        )
        for _ in range(count)
    ]


class EndlessSupply:
    """Due deliveries without end: every claim gets all it asks for."""

    def __init__(self) -> None:
        self.wanted: list[int] = []
        self.asked = asyncio.Event()

    async def finish_and_claim(
        self,
        finished: list[Finished],
        want: int,
        per_endpoint: int,
        watermark: int,
        lease: timedelta,
    ) -> tuple[list[Claim], list[tuple[Finished, str]]]:
        self.wanted.append(want)
        self.asked.set()
        return _claims(want), []

    async def purge_completed(self, older_than: timedelta) -> int:
        return 0


class HangingEndpoint:
    """Every attempt hangs until released; counts the attempts started, and tells
    when `expected` have."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.started = 0
        self.all_started = asyncio.Event()
        self.release = asyncio.Event()

    async def attempt(self, claim: Claim) -> AttemptResult:
        self.started += 1
        if self.started >= self.expected:
            self.all_started.set()
        await self.release.wait()
        return AttemptResult(datetime.now(UTC), 1.0, 200, None)


class StoreUnderWay:
    """A store of events held open until `finish`; it makes one delivery and claims
    what its turn allows (`claims`), or nothing (its endpoint busy, say)."""

    def __init__(self, claims: bool = True) -> None:
        self.claims = claims
        self.turn: ClaimTurn | None = None
        self.started = asyncio.Event()
        self.finish = asyncio.Event()

    async def __call__(self, turn: ClaimTurn | None) -> StoredEvents:
        self.turn = turn
        self.started.set()
        await self.finish.wait()
        claims = _claims(turn.want) if turn is not None and self.claims else []
        return StoredEvents(deliveries={str(uuid.uuid4()): 1}, leased=[], claims=claims)


async def _known_watermark() -> int:
    return 1


def _dispatcher(supply: EndlessSupply, endpoint: HangingEndpoint, max_in_flight: int) -> Dispatcher:
    return Dispatcher(
        cast(DeliveryRepository, supply),
        endpoint.attempt,
        _known_watermark,
        Limits(
            max_in_flight=max_in_flight,
            per_endpoint=16,
            # Long: nothing in these tests may be found by the poll.
            poll_seconds=60,
            lease=timedelta(seconds=30),
        ),
    )


@contextlib.asynccontextmanager
async def hanging_endpoint(expected: int) -> AsyncIterator[HangingEndpoint]:
    hanging = HangingEndpoint(expected)
    try:
        yield hanging
    finally:
        hanging.release.set()


@contextlib.asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[None]:
    loop = asyncio.create_task(dispatcher.run())
    try:
        yield
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_a_store_and_the_loop_claiming_at_once_start_no_more_than_the_replicas_limit() -> (
    None
):
    supply = EndlessSupply()
    async with hanging_endpoint(expected=10) as endpoint:
        dispatcher = _dispatcher(supply, endpoint, max_in_flight=10)
        store = StoreUnderWay()
        storing = asyncio.create_task(dispatcher.store_and_claim(store, [1]))
        await store.started.wait()
        async with running(dispatcher):
            await asyncio.wait_for(supply.asked.wait(), 5)
            store.finish.set()
            await storing
            await asyncio.wait_for(endpoint.all_started.wait(), 5)
            # Anything more would have started by now.
            await asyncio.sleep(0.1)
        assert endpoint.started == 10
        assert store.turn is not None and store.turn.want == 5
        assert supply.wanted == [5]


async def test_a_claim_the_store_under_way_left_no_room_for_is_made_once_it_is_back() -> None:
    supply = EndlessSupply()
    async with hanging_endpoint(expected=1) as endpoint:
        dispatcher = _dispatcher(supply, endpoint, max_in_flight=1)
        # The store's turn takes the one slot; the loop, started meanwhile, finds no room.
        store = StoreUnderWay(claims=False)
        storing = asyncio.create_task(dispatcher.store_and_claim(store, [1]))
        await store.started.wait()
        assert store.turn is not None and store.turn.want == 1
        async with running(dispatcher):
            await asyncio.sleep(0.1)
            assert supply.wanted == []
            # The store claims nothing after all: the slot is the loop's, at once rather
            # than at the loop's next poll a minute later.
            store.finish.set()
            await storing
            await asyncio.wait_for(endpoint.all_started.wait(), 5)
        assert supply.wanted == [1]
