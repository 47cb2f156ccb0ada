"""The gateway of the design's prototype (`make bench ... --prototype`): one aiohttp
process with an in-memory token bucket per bearer token, sending the holds that arrive
together as one gRPC call, at most two calls in flight, to
bench/prototype_hold_service.py.

It is the design the hold path follows (a public gateway, an internal gRPC hop,
coalesced calls, one Redis round trip per batch) with none of the path's rules: no key
check beyond "a bearer token", no schema, no catalogue, no intervals, no idempotency,
no metrics or request ids of its own. Measured in the full path's place against the same
floor, it shows what the rules cost on the machine of the run. Like the gateway, it
echoes X-Request-Id (bench/load.lua matches answers to requests by it).

    PROTOTYPE_HOLDS_ADDR=127.0.0.1:50099 NAIVE_PORT=8098 NAIVE_SERVICE_MINUTES=5 \\
        python bench/prototype_hold_app.py
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import orjson
from aiohttp import web
from naive_hold_app import held, naive_app, serve, slot_taken
from prototype_hold_service import METHOD

# As `make run` limits a business key: 100 a second, bursts of 200.
RATE_PER_SECOND = 100.0
BURST = 200.0
IN_FLIGHT = 2
BATCH_MAX = 128

Call = Callable[[bytes], Awaitable[bytes]]


class HoldBatches:
    """The holds that queue while calls are in flight go together in the next call."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.waiting: list[tuple[list[str], asyncio.Future[bool]]] = []
        self.in_flight = 0
        self._calls: set[asyncio.Task[None]] = set()  # referenced until done

    async def place(self, key: str, holder: str) -> bool:
        placed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.append(([key, holder], placed))
        self._send_some()
        return await placed

    def _send_some(self) -> None:
        while self.waiting and self.in_flight < IN_FLIGHT:
            batch, self.waiting = self.waiting[:BATCH_MAX], self.waiting[BATCH_MAX:]
            self.in_flight += 1
            call = asyncio.ensure_future(self._send(batch))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _send(self, batch: list[tuple[list[str], asyncio.Future[bool]]]) -> None:
        try:
            answers = orjson.loads(await self.call(orjson.dumps([hold for hold, _ in batch])))
            for (_, placed), answer in zip(batch, answers, strict=True):
                placed.set_result(bool(answer))
        except Exception as error:
            for _, placed in batch:
                if not placed.done():
                    placed.set_exception(error)
        finally:
            self.in_flight -= 1
            self._send_some()


BATCHES = web.AppKey("batches", HoldBatches)
_buckets: dict[str, tuple[float, float]] = {}  # token -> (tokens left, when)


def spend_token(token: str) -> bool:
    now = time.monotonic()
    left, then = _buckets.get(token, (BURST, now))
    left = min(BURST, left + (now - then) * RATE_PER_SECOND)
    if left < 1:
        _buckets[token] = (left, now)
        return False
    _buckets[token] = (left - 1, now)
    return True


async def hold(request: web.Request) -> web.Response:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not token:
        return web.Response(status=401)
    if not spend_token(token):
        return web.Response(status=429)
    wanted = orjson.loads(await request.read())
    hold_id = str(uuid.uuid4())
    key = f"prototype:{wanted['service_id']}:{wanted['starts_at']}"
    if not await request.app[BATCHES].place(key, hold_id):
        return slot_taken()
    return held(wanted, hold_id)


async def hold_service(app: web.Application) -> AsyncIterator[None]:
    async with grpc.aio.insecure_channel(os.environ["PROTOTYPE_HOLDS_ADDR"]) as channel:
        place = channel.unary_unary(METHOD, None, None)

        async def call(batch: bytes) -> bytes:
            answer: bytes = await place(batch, timeout=5)
            return answer

        app[BATCHES] = HoldBatches(call)
        yield


def main() -> None:
    serve(naive_app(hold, hold_service))


if __name__ == "__main__":
    main()
