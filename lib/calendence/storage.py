"""Store clients with bounded pools: PostgreSQL (JSON columns decoded by orjson) and Redis."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolAcquireContext
from redis.asyncio import BlockingConnectionPool, Redis

from calendence import jsonfmt


async def _init_connection(connection: asyncpg.Connection) -> None:
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type,
            encoder=lambda value: jsonfmt.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


class TrackedConnection(asyncpg.Connection):  # type: ignore[misc]  # no type hints
    """A pooled connection that knows whether its session state changed."""

    session_changed = False

    def mark_session_changed(self) -> None:
        self.session_changed = True


def mark_session_changed(connection: asyncpg.Connection) -> None:
    """Tell the pool this connection's session state changed (a session-level lock,
    LISTEN, SET): it runs the full reset query when the connection comes back."""
    connection.mark_session_changed()  # through the pool's proxy, on the connection


async def _reset_if_changed(connection: TrackedConnection) -> None:
    """The pool's reset, run on every release.

    asyncpg has already rolled back an open transaction and dropped the listeners'
    callbacks by then. Its default would send one more statement each time (`SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`), a round trip per
    release; our queries change no session state, so only a connection marked by
    `mark_session_changed` pays it.
    """
    if connection.session_changed:
        query = connection.get_reset_query()
        if query:
            await connection.execute(query)
        connection.session_changed = False


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg has no type hints
    """A pool whose every wait for a connection is bounded.

    asyncpg waits for a free connection forever unless told otherwise, including
    inside `pool.fetch()` and friends. Here every acquire without its own timeout waits
    at most `acquire_timeout` and then raises TimeoutError, which services answer as
    UNAVAILABLE (`calendence.errors.STORE_BUSY_ERRORS`): a burst beyond the pool queues
    briefly, and a longer one is told to come back, never left hanging.
    """

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def open_pool(
    dsn: str, min_size: int, max_size: int, acquire_timeout: float = 3.0
) -> asyncpg.Pool:
    # asyncpg.create_pool's own defaults for the rest, among them a cache of 100
    # prepared statements per connection (every query text is prepared once).
    pool = BoundedPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_reset_if_changed,
        loop=None,
        connection_class=TrackedConnection,
        record_class=asyncpg.Record,
        acquire_timeout=acquire_timeout,
    )
    await pool
    return pool


def open_redis(url: str, max_connections: int, wait_seconds: float, **options: Any) -> Redis:
    """A Redis client on a blocking pool of `max_connections`.

    redis-py's default pool raises "Too many connections" the moment a burst outgrows
    it; this one makes the excess wait its turn, at most `wait_seconds`, and then raises
    ConnectionError, which callers answer as "busy, retry" (STORE_BUSY_ERRORS).
    """
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=wait_seconds, **options
    )
    return Redis(connection_pool=pool)
