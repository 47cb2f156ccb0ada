"""The pool resets a connection in full only when its session state was changed."""

from __future__ import annotations

import asyncpg
from calendence.devstack.stack import LocalStack
from calendence.storage import mark_session_changed, open_pool

LOCK = 741_852_963


async def test_a_marked_connection_gives_back_its_session_lock(stack: LocalStack) -> None:
    pool = await open_pool(stack.env["DATABASE_URL"], 1, 1)
    other = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        async with pool.acquire() as connection:
            mark_session_changed(connection)
            assert await connection.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
            await connection.execute("SET application_name = 'changed'")
        # Released without unlocking: the reset did it.
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
        await other.execute("SELECT pg_advisory_unlock($1)", LOCK)
        async with pool.acquire() as connection:
            assert await connection.fetchval("SHOW application_name") != "changed"
    finally:
        await other.close()
        await pool.close()


async def test_an_open_transaction_is_rolled_back_on_release(stack: LocalStack) -> None:
    pool = await open_pool(stack.env["DATABASE_URL"], 1, 1)
    try:
        async with pool.acquire() as connection:
            await connection.execute("BEGIN")
            await connection.execute("CREATE TEMP TABLE left_open (x int) ON COMMIT DROP")
        async with pool.acquire() as connection:
            assert await connection.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
    finally:
        await pool.close()
