"""Load through every gateway replica while a test breaks something.

One business, open around the clock, booked through each gateway by its own bounded
loop (hold, then book, each on a slot of its own) until the test says stop; every
answer is kept, and a webhook receiver counts what reached the business, by
`webhook-id`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from tests.api import AROUND_THE_CLOCK, Api, Tenant, new_tenant
from tests.booking_helpers import Salon
from tests.webhook_receiver import Received, WebhookReceiver, create_endpoint

# A loop stops after this many bookings even if never told to: a test cannot hang on it.
MOST_ITERATIONS = 400
# Between one booking and the next hold of a loop: a steady load, not a flood.
PAUSE_SECONDS = 0.02
# Answers a request may get while a replica or store node fails under it.
ACCEPTED_STATUSES = {201, 503}


@dataclass
class Outcome:
    gateway: int
    step: str  # "hold" or "book"
    status: int | None  # None: the connection broke (its gateway was killed)
    at: float  # time.monotonic()
    retry_after: str | None = None


@dataclass
class BookingLoad:
    salons: list[Salon]  # the same business, one per gateway
    tokens: list[str]
    outcomes: list[Outcome] = field(default_factory=list)
    booked: dict[str, int] = field(default_factory=dict)  # booking id -> gateway
    _slots: itertools.count[int] = field(default_factory=itertools.count)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(index)) for index in range(len(self.salons))]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def _starts_at(self, slot: int) -> datetime:
        day = datetime.now(UTC).date() + timedelta(days=1)
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return midnight + timedelta(minutes=30 * slot)

    async def _loop(self, gateway: int) -> None:
        salon, token = self.salons[gateway], self.tokens[gateway]
        for _ in range(MOST_ITERATIONS):
            if self._stop.is_set():
                return
            hold = await self._call(
                gateway, "hold", salon.hold(token, self._starts_at(next(self._slots)))
            )
            if hold is None or hold.status != 201:
                await asyncio.sleep(0.05)  # a failing replica is not hammered
                continue
            book = await self._call(gateway, "book", salon.book(token, hold.body["hold_id"]))
            if book is not None and book.status == 201:
                self.booked[book.body["id"]] = gateway
            await asyncio.sleep(PAUSE_SECONDS)

    async def _call(self, gateway: int, step: str, request: Any) -> Any:
        try:
            answer = await request
        except (aiohttp.ClientConnectionError, TimeoutError):
            self.outcomes.append(Outcome(gateway, step, None, time.monotonic()))
            return None
        retry_after = answer.headers.get("Retry-After")
        self.outcomes.append(Outcome(gateway, step, answer.status, time.monotonic(), retry_after))
        return answer

    def statuses(self, gateway: int | None = None) -> Counter[int | None]:
        return Counter(
            outcome.status
            for outcome in self.outcomes
            if gateway is None or outcome.gateway == gateway
        )

    def successes_after(self, moment: float, gateway: int) -> int:
        return sum(
            1
            for outcome in self.outcomes
            if outcome.gateway == gateway and outcome.at > moment and outcome.status == 201
        )

    def unavailable_without_retry_after(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 503 and not o.retry_after]


async def open_business(apis: list[Api], hub_key: str) -> tuple[list[Salon], list[str]]:
    """A business open around the clock with a 30-minute service, seen through every
    gateway, and a session token for each gateway's loop."""
    tenant = await new_tenant(apis[0], hub_key)
    location = await tenant.location(opening_hours=AROUND_THE_CLOCK)
    service = await tenant.service([location["id"]])
    salons = []
    for api in apis:
        seen = Tenant(api, tenant.hub_key, tenant.business_id, tenant.business_key)
        salons.append(Salon(seen, location["id"], service["id"], service["id"]))
    tokens = [await salon.tenant.session_token() for salon in salons]
    return salons, tokens


async def start_load(apis: list[Api], hub_key: str, receiver: WebhookReceiver) -> BookingLoad:
    salons, tokens = await open_business(apis, hub_key)
    await create_endpoint(salons[0].tenant, receiver.url("/hook"), events=["booking.created"])
    load = BookingLoad(salons, tokens)
    load.start()
    return load


async def wait_until_booked(load: BookingLoad, count: int, timeout: float = 20) -> None:
    """Until the loops have made `count` more bookings (the load is really running)."""
    target = len(load.booked) + count
    deadline = time.monotonic() + timeout
    while len(load.booked) < target:
        assert time.monotonic() < deadline, f"load stalled: {load.statuses()}"
        await asyncio.sleep(0.05)


def booking_of(received: Received) -> str:
    booking_id: str = received.json["data"]["id"]
    return booking_id


async def webhooks_of(
    bookings: set[str], receiver: WebhookReceiver, timeout: float = 30
) -> dict[str, set[str]]:
    """booking id -> the webhook-ids its `booking.created` came under (so far), once a
    webhook of every booking in `bookings` has arrived, or `timeout` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        seen: dict[str, set[str]] = {}
        for received in receiver.at("/hook"):
            seen.setdefault(booking_of(received), set()).add(received.webhook_id)
        if bookings <= set(seen) or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.2)
