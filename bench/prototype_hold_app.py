"""The gateway of the design's prototype (`make bench ... --prototype`): one aiohttp
process with an in-memory token bucket per bearer token (the gateway's own buckets),
sending the holds that arrive together as one gRPC call (the gateway's own coalescer),
at most two calls in flight, to bench/prototype_hold_service.py.

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

import os
import uuid
from collections.abc import AsyncIterator

import grpc
import orjson
from aiohttp import web
from calendence.coalesce import Coalescer
from gateway.local_buckets import Bucket, LocalBuckets
from naive_hold_app import held, naive_app, serve, slot_taken
from prototype_hold_service import METHOD

IN_FLIGHT = 2
BATCH_MAX = 128

# The holds that queue while calls are in flight go together in the next call: the
# coalescer the gateway uses too.
HoldBatches = Coalescer[tuple[str, str], bool]
BATCHES = web.AppKey("batches", HoldBatches)
# The gateway's own in-memory buckets (its per-replica copy), without the shared ones.
BUCKETS = LocalBuckets()
BUCKET = Bucket(per_second=100, size=200)  # as `make run` limits a business key


async def hold(request: web.Request) -> web.Response:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not token:
        return web.Response(status=401)
    if not BUCKETS.take(token, BUCKET).allowed:
        return web.Response(status=429)
    wanted = orjson.loads(await request.read())
    hold_id = str(uuid.uuid4())
    key = f"prototype:{wanted['service_id']}:{wanted['starts_at']}"
    if not await request.app[BATCHES].submit((key, hold_id)):
        return slot_taken()
    return held(wanted, hold_id)


async def hold_service(app: web.Application) -> AsyncIterator[None]:
    async with grpc.aio.insecure_channel(os.environ["PROTOTYPE_HOLDS_ADDR"]) as channel:
        place = channel.unary_unary(METHOD, None, None)

        async def send(batch: list[tuple[str, str]]) -> list[bool]:
            answer: bytes = await place(orjson.dumps(batch), timeout=5)
            return [bool(placed) for placed in orjson.loads(answer)]

        app[BATCHES] = HoldBatches(send, max_in_flight=IN_FLIGHT, max_batch=BATCH_MAX)
        yield


def main() -> None:
    serve(naive_app(hold, hold_service))


if __name__ == "__main__":
    main()
