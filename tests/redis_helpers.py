"""A test's own Redis client on the stack's Redis: one server or a Redis Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from calendence.devstack.stack import LocalStack
from calendence.storage import RedisClient, open_redis


@asynccontextmanager
async def stack_redis(stack: LocalStack) -> AsyncIterator[RedisClient]:
    """The client the services would build from the stack's REDIS_URL (commands meant
    for every node, such as FLUSHALL or SCRIPT FLUSH, reach every primary)."""
    client = open_redis(stack.env["REDIS_URL"], 8, 5.0, socket_timeout=5.0)
    try:
        yield client
    finally:
        await client.aclose()


async def claim_lifetimes(stack: LocalStack, location_id: str, service_id: str) -> list[int]:
    """The milliseconds each claimed granule of a staff-less service at a location has
    left in Redis (the location+service is the booked resource)."""
    async with stack_redis(stack) as redis:
        resource = f"svc:{location_id}:{service_id}"
        granules = [k async for k in redis.scan_iter(match=f"cal:{{r:{resource}}}:g:*")]
        return [await redis.pttl(k) for k in granules]
