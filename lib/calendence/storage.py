"""The PostgreSQL connection pool, with JSON columns decoded by orjson."""

from __future__ import annotations

import asyncpg
import orjson

from calendence import jsonfmt


async def _init_connection(connection: asyncpg.Connection) -> None:
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type,
            encoder=lambda value: jsonfmt.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def open_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection
    )
    assert pool is not None
    return pool
