"""How many requests the stores answered during a phase: PostgreSQL statements (counted
by pg_stat_statements, which the bench's stack loads) and Redis commands. Counts, not
times: they do not swing with the machine's load, so a change that saves a round trip
per request shows in them when the timed figures cannot show it.

Both are counted as each statement or command ends. (PostgreSQL's transaction counts are
not: a backend reports them up to seconds later, so they are left out.)"""

from __future__ import annotations

import asyncpg
from redis.asyncio import Redis

STORE_COUNTS = ("postgres statements", "redis commands")


async def store_counts(database_url: str, redis_url: str) -> dict[str, float]:
    """The stores' running totals; the bench's own reading is left out of the statements
    (it names pg_stat_*) and adds a few Redis commands a reading."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        statements = await connection.fetchval(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
            "WHERE query NOT LIKE '%pg_stat_%'"
        )
    finally:
        await connection.close()
    redis = Redis.from_url(redis_url)
    try:
        info = await redis.info("stats")
    finally:
        await redis.aclose()
    return {
        "postgres statements": float(statements),
        "redis commands": float(info["total_commands_processed"]),
    }


def counted_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in STORE_COUNTS}
