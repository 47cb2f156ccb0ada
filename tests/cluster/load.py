"""Bounded load for failure tests: workers that hold slots and book them through the
gateways, recording every answer with when it was asked, until told to stop.

Pairs of consecutive requests on a business ask for the same slot, so holds also race
(one 201, one 409). A booking answered 503 is retried with its Idempotency-Key, as a
client told "Retry-After" would, and so is one answered 409 because an earlier
attempt with that key is still being processed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api import AROUND_THE_CLOCK, Answer, Api, Tenant, iso, new_tenant
from tests.booking_helpers import JANE
from tests.hold_helpers import HOLD_PATH, Shop, open_shop

# No worker waits longer than this for one answer: a hang is a failure, not a pause.
ANSWER_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class Call:
    kind: str  # "hold" or "book"
    shop: int
    started: float  # time.monotonic()
    status: int  # 0: no answer within ANSWER_TIMEOUT_SECONDS
    retry_after: str | None
    body: Any
    # A booking's: when its hold was asked for (time.monotonic()).
    hold_asked_at: float | None = None


@dataclass
class PlacedHold:
    shop: int
    token: str
    hold_id: str
    starts_at: str
    idempotency_key: str
    asked_at: float  # time.monotonic() when its hold was asked for
    booking: dict[str, Any] | None = None


@dataclass
class BookingLoad:
    gateways: list[Api]
    shops: list[Shop]
    workers: int = 6
    calls: list[Call] = field(default_factory=list)
    holds: list[PlacedHold] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _counters: list[itertools.count[int]] = field(default_factory=list)

    async def run(self, seconds: float) -> None:
        """Run the workers for at most `seconds` (or until `stop`)."""
        self._counters = [itertools.count() for _ in self.shops]
        tokens = [
            [await shop.tenant.session_token() for shop in self.shops] for _ in range(self.workers)
        ]
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(self._worker(number, tokens[number], deadline) for number in range(self.workers))
        )

    def stop(self) -> None:
        self._stop.set()

    def _next_slot(self, shop: int) -> str:
        day = datetime.now(UTC).date() + timedelta(days=3)
        first = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return iso(first + timedelta(minutes=30 * (next(self._counters[shop]) // 2)))

    async def _worker(self, number: int, tokens: list[str], deadline: float) -> None:
        for step in itertools.count():
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            shop_index = (number + step) % len(self.shops)
            shop = self.shops[shop_index]
            gateway = self.gateways[(number + step) % len(self.gateways)]
            starts_at = self._next_slot(shop_index)
            asked_at = time.monotonic()
            answer = await self._ask(
                "hold",
                shop_index,
                gateway,
                HOLD_PATH,
                tokens[shop_index],
                shop.hold_body(starts_at),
            )
            if answer is None or answer.status != 201:
                if answer is not None and answer.status == 503:
                    await asyncio.sleep(0.05)
                continue
            placed = PlacedHold(
                shop_index,
                tokens[shop_index],
                answer.body["hold_id"],
                starts_at,
                uuid.uuid4().hex,
                asked_at,
            )
            self.holds.append(placed)
            await self._book(placed, gateway, deadline)

    async def _book(self, placed: PlacedHold, gateway: Api, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            answer = await self._ask(
                "book",
                placed.shop,
                gateway,
                "/api/v1/bookings",
                placed.token,
                {"hold_id": placed.hold_id, "client": JANE},
                hold_asked_at=placed.asked_at,
                headers={"Idempotency-Key": placed.idempotency_key},
            )
            if answer is not None and answer.status == 201:
                placed.booking = answer.body
                return
            if answer is None or not retry_later(answer):
                return
            await asyncio.sleep(0.2)

    async def _ask(
        self,
        kind: str,
        shop: int,
        gateway: Api,
        path: str,
        token: str,
        body: Any,
        hold_asked_at: float | None = None,
        **kw: Any,
    ) -> Answer | None:
        started = time.monotonic()
        try:
            answer = await asyncio.wait_for(
                gateway.post(path, token, body, **kw), ANSWER_TIMEOUT_SECONDS
            )
        except TimeoutError:
            self.calls.append(Call(kind, shop, started, 0, None, None, hold_asked_at))
            return None
        retry_after = answer.headers.get("Retry-After")
        self.calls.append(
            Call(kind, shop, started, answer.status, retry_after, answer.body, hold_asked_at)
        )
        return answer

    def count(self, status: int, since: float = 0.0) -> int:
        return sum(1 for call in self.calls if call.status == status and call.started >= since)


def still_in_progress(answer: Answer) -> bool:
    """409: an earlier attempt with this Idempotency-Key is still being worked on (its
    client gave up on it, the platform had not)."""
    return answer.status == 409 and "still being processed" in str(answer.body.get("detail"))


def retry_later(answer: Answer) -> bool:
    """An answer that tells a booking's client to try again with the same key."""
    return answer.status == 503 or still_in_progress(answer)


async def open_shops(api: Api, hub_key: str, count: int) -> list[Shop]:
    """Businesses open around the clock, a 30-minute service each, no staff."""
    tenants: list[Tenant] = [await new_tenant(api, hub_key) for _ in range(count)]
    return [
        await open_shop(tenant, location={"timezone": "UTC", "opening_hours": AROUND_THE_CLOCK})
        for tenant in tenants
    ]


def resource_key(shop: Shop) -> str:
    """A Redis key in the hash slot of the shop's holds (see hold_service.hold_repository)."""
    return f"cal:{{r:svc:{shop.location_id}:{shop.service_id}}}:g:0"
