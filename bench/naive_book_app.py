"""The floor the hold-then-book benchmark compares against: one aiohttp process.

POST /api/v1/bookings/hold claims the slot with SET NX and stores the hold (one Redis
call: a two-line script); POST /api/v1/bookings takes the hold with GETDEL, then in one
PostgreSQL transaction inserts the booking into a copy of the bookings table (same
columns, checks and `bookings_no_overlap` exclusion constraint; no foreign keys) and
an outbox row into a copy of the outbox. Nothing else: no key check, no schema, no
catalogue, no relay, no gRPC hop. It echoes X-Request-Id, like the gateway.

    REDIS_URL=... DATABASE_URL=... NAIVE_PORT=8099 NAIVE_BUSINESS_ID=<uuid> \\
        python bench/naive_book_app.py
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime

import asyncpg
import orjson
from aiohttp import web
from naive_hold_app import SERVICE_DURATION, TTL, naive_app, naive_redis, serve
from redis.asyncio import Redis

REDIS = web.AppKey("redis", Redis)
POOL = web.AppKey("pool", asyncpg.Pool)
# Claim the slot and keep the hold under its id, in one round trip.
# KEYS[1]: the slot (service and start); KEYS[2]: the hold record. ARGV[1]: the hold id;
# ARGV[2]: the hold document; ARGV[3]: the hold's TTL in ms. Returns 1 held, 0 taken.
CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
TABLES = """
CREATE TABLE IF NOT EXISTS naive_bookings (LIKE bookings INCLUDING ALL);
CREATE TABLE IF NOT EXISTS naive_outbox (LIKE outbox INCLUDING ALL);
"""
INSERT_BOOKING = """
INSERT INTO naive_bookings (id, business_id, service_id, location_id, resource_id, hold_id,
    status, starts_at, ends_at, blocked_until, client_first_name, client_last_name,
    client_email)
VALUES ($1, $2, $3, $4, $5, $6, 'confirmed', $7, $8, $8, $9, $10, $11)
"""
INSERT_EVENT = """
INSERT INTO naive_outbox (id, type, business_id, payload) VALUES ($1, 'booking.created', $2, $3)
"""


def problem(status: int, title: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"status": status, "title": title}),
        content_type="application/problem+json",
    )


async def hold(request: web.Request) -> web.Response:
    wanted = orjson.loads(await request.read())
    hold_id = str(uuid.uuid4())
    document = {
        "hold_id": hold_id,
        "service_id": wanted["service_id"],
        "location_id": wanted["location_id"],
        "starts_at": wanted["starts_at"],
    }
    claimed = await request.app[REDIS].eval(
        CLAIM,
        2,
        f"naive:{wanted['service_id']}:{wanted['starts_at']}",
        f"naive:hold:{hold_id}",
        hold_id,
        orjson.dumps(document),
        int(TTL.total_seconds() * 1000),
    )
    if not claimed:
        return problem(409, "Slot unavailable")
    return web.Response(status=201, body=orjson.dumps(document), content_type="application/json")


async def book(request: web.Request) -> web.Response:
    wanted = orjson.loads(await request.read())
    raw = await request.app[REDIS].getdel(f"naive:hold:{wanted['hold_id']}")
    if raw is None:
        return problem(404, "Hold not found")
    held = orjson.loads(raw)
    starts_at = datetime.fromisoformat(held["starts_at"])
    booking = {
        "id": str(uuid.uuid4()),
        "business_id": os.environ["NAIVE_BUSINESS_ID"],
        "service_id": held["service_id"],
        "location_id": held["location_id"],
        "hold_id": held["hold_id"],
        "status": "confirmed",
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + SERVICE_DURATION).isoformat(),
        "client": wanted["client"],
    }
    client = wanted["client"]
    try:
        async with request.app[POOL].acquire() as connection, connection.transaction():
            await connection.execute(
                INSERT_BOOKING,
                uuid.UUID(booking["id"]),
                uuid.UUID(booking["business_id"]),
                uuid.UUID(held["service_id"]),
                uuid.UUID(held["location_id"]),
                f"svc:{held['location_id']}:{held['service_id']}",
                uuid.UUID(held["hold_id"]),
                starts_at,
                starts_at + SERVICE_DURATION,
                client["first_name"],
                client["last_name"],
                client["email"],
            )
            await connection.execute(
                INSERT_EVENT,
                uuid.uuid4(),
                uuid.UUID(booking["business_id"]),
                orjson.dumps(booking).decode(),
            )
    except asyncpg.ExclusionViolationError:
        return problem(409, "Slot unavailable")
    return web.Response(status=201, body=orjson.dumps(booking), content_type="application/json")


async def stores(app: web.Application):  # type: ignore[no-untyped-def]
    app[REDIS] = naive_redis()
    app[POOL] = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=2, max_size=10)
    async with app[POOL].acquire() as connection:
        await connection.execute(TABLES)
    yield
    await app[POOL].close()
    await app[REDIS].aclose()


def main() -> None:
    app = naive_app(hold, stores)
    app.router.add_post("/api/v1/bookings", book)
    serve(app)


if __name__ == "__main__":
    main()
