"""Store start-up every service shares: PostgreSQL, Redis and NATS, each waited for.

Compose, Kubernetes and the local stack start stores and services together, so a
service retries each store with exponential backoff, logging every retry and why,
and gives up (Unavailable) only after about two minutes. A PostgreSQL pool comes up
only on a database whose schema this code expects (`calendence.migrations`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from nats.aio.client import Client as NatsClient

from calendence import events
from calendence.errors import Unavailable
from calendence.logs import log_fields
from calendence.migrations import require_schema
from calendence.settings import CommonSettings, RedisSettings
from calendence.storage import RedisClient, open_pool, open_redis

log = logging.getLogger("calendence.store_startup")

T = TypeVar("T")


async def connect_with_retry(
    what: str, connect: Callable[[], Awaitable[T]], *, attempts: int = 30, max_delay: float = 5.0
) -> T:
    """Retry a store connection at start-up with exponential backoff, logging why."""
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return await connect()
        except Exception as error:
            if attempt == attempts:
                raise Unavailable(f"{what} unreachable after {attempts} attempts") from error
            log.warning(
                "store unreachable, retrying",
                extra=log_fields(store=what, attempt=attempt, retry_in=delay, error=repr(error)),
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


async def connect_postgres(
    dsn: str,
    *,
    schema: str,
    min_size: int,
    max_size: int,
    acquire_timeout: float,
    attempts: int = 30,
) -> asyncpg.Pool:
    """A bounded pool on `dsn`, once PostgreSQL answers and holds every migration of
    the `schema` package (SchemaBehind otherwise: the service must not serve)."""
    pool: asyncpg.Pool = await connect_with_retry(
        "postgres", lambda: open_pool(dsn, min_size, max_size, acquire_timeout), attempts=attempts
    )
    try:
        async with pool.acquire() as connection:
            await require_schema(connection, schema)
    except BaseException:
        await pool.close()
        raise
    return pool


async def connect_redis(
    settings: RedisSettings, max_connections: int, wait_seconds: float
) -> RedisClient:
    """A client on REDIS_URL with bounded waits (`storage.open_redis`: one server or a
    Redis Cluster; a connection idle for 30 s is checked before use), once Redis
    answers."""
    redis = open_redis(
        settings.redis_url,
        max_connections,
        wait_seconds,
        socket_timeout=settings.redis_socket_timeout_seconds,
        health_check_interval=30,
    )
    await connect_with_retry("redis", redis.ping)
    return redis


async def connect_nats(
    settings: CommonSettings, name: str, *, events_stream: bool = False
) -> NatsClient:
    """A NATS connection named after the service, to every server NATS_URL lists, once
    one answers; with `events_stream`, the domain events stream exists too, created or
    updated with NATS_STREAM_REPLICAS copies."""
    nc = await connect_with_retry("nats", lambda: events.connect_service(settings, name))
    if events_stream:
        js = nc.jetstream()
        await connect_with_retry(
            "nats", lambda: events.ensure_events_stream(js, settings.nats_stream_replicas)
        )
    return nc
