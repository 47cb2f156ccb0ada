"""The hold service of the design's prototype (`make bench ... --prototype`): a batch of
holds arrives as one gRPC call (no protobuf: a JSON list of `[key, holder]` pairs) and
runs as one Redis pipeline of SET NX; the answer is a JSON list of booleans.

No catalogue, no intervals (one key per start time), no hold record or locator, no
idempotency: the hop and the store's round trip per batch, and nothing else.

    REDIS_URL=redis://127.0.0.1:6379/0 NAIVE_PORT=50099 python bench/prototype_hold_service.py
"""

from __future__ import annotations

import os

import grpc
import orjson
import uvloop
from naive_hold_app import TTL, naive_redis

SERVICE = "prototype.Holds"
METHOD = f"/{SERVICE}/Place"


async def serve() -> None:
    redis = naive_redis()
    ttl_ms = int(TTL.total_seconds() * 1000)

    async def place(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        pipeline = redis.pipeline(transaction=False)
        for key, holder in orjson.loads(request):
            pipeline.set(key, holder, nx=True, px=ttl_ms)
        return orjson.dumps([bool(placed) for placed in await pipeline.execute()])

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Place": grpc.unary_unary_rpc_method_handler(place)}
            ),
        )
    )
    server.add_insecure_port(f"127.0.0.1:{os.environ['NAIVE_PORT']}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    uvloop.run(serve())
