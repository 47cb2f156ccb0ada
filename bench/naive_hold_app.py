"""The floor the hold benchmark compares against: one aiohttp process, SET NX on Redis.

It answers POST /api/v1/bookings/hold like the real endpoint does on its happy and
its conflict path, minus everything that makes it correct: no key check, no schema,
no catalogue, no intervals (one key per start time), no gRPC hop. Like the gateway, it
echoes X-Request-Id (bench/load.lua matches answers to requests by it).

    REDIS_URL=redis://127.0.0.1:6379/0 NAIVE_PORT=8099 NAIVE_SERVICE_MINUTES=5 \\
        python bench/naive_hold_app.py
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import orjson
import uvloop
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.asyncio import BlockingConnectionPool, Redis

TTL = timedelta(minutes=10)
SERVICE_DURATION = timedelta(minutes=int(os.environ.get("NAIVE_SERVICE_MINUTES", "30")))
REDIS = web.AppKey("redis", Redis)
REDIS_CONNECTIONS = 64
REQUEST_ID = "X-Request-Id"


@web.middleware
async def echo_request_id(request: web.Request, handler):  # type: ignore[no-untyped-def]
    response = await handler(request)
    response.headers[REQUEST_ID] = request.headers.get(REQUEST_ID, "")
    return response


async def alive(request: web.Request) -> web.Response:
    return web.Response(status=200, body=b'{"status":"alive"}', content_type="application/json")


async def hold(request: web.Request) -> web.Response:
    wanted = orjson.loads(await request.read())
    hold_id = str(uuid.uuid4())
    key = f"naive:{wanted['service_id']}:{wanted['starts_at']}"
    if not await request.app[REDIS].set(key, hold_id, nx=True, px=int(TTL.total_seconds() * 1000)):
        return slot_taken()
    return held(wanted, hold_id)


def slot_taken() -> web.Response:
    """The floors' 409."""
    return web.Response(
        status=409,
        body=orjson.dumps({"status": 409, "title": "Slot unavailable"}),
        content_type="application/problem+json",
    )


def held(wanted: dict[str, str], hold_id: str) -> web.Response:
    """The floors' 201: the hold document the real endpoint answers, field for field."""
    now = datetime.now(UTC)
    return web.Response(
        status=201,
        body=orjson.dumps(
            {
                "hold_id": hold_id,
                "service_id": wanted["service_id"],
                "location_id": wanted["location_id"],
                "starts_at": wanted["starts_at"],
                "ends_at": (
                    datetime.fromisoformat(wanted["starts_at"]) + SERVICE_DURATION
                ).isoformat(),
                "expires_at": (now + TTL).isoformat(timespec="seconds"),
            }
        ),
        content_type="application/json",
    )


def naive_redis() -> Redis:
    """REDIS_URL's client, waiting for a free connection as the services' pools do:
    redis-py's default pool raises "Too many connections" (a 500) once more requests
    than it holds are under way."""
    return Redis(
        connection_pool=BlockingConnectionPool.from_url(
            os.environ["REDIS_URL"], max_connections=REDIS_CONNECTIONS
        )
    )


async def redis_client(app: web.Application):  # type: ignore[no-untyped-def]
    app[REDIS] = naive_redis()
    yield
    await app[REDIS].aclose()


def serve(app: web.Application) -> None:
    """Run a floor app on NAIVE_PORT as the gateway runs: uvloop, no access log."""
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(os.environ["NAIVE_PORT"]),
        access_log=None,
        print=None,
        backlog=1024,
        loop=uvloop.new_event_loop(),
    )


def naive_app(
    hold: Handler, stores: Callable[[web.Application], AsyncIterator[None]]
) -> web.Application:
    """A floor's app: X-Request-Id echoed, /healthz, POST /api/v1/bookings/hold answered
    by `hold`, and `stores` open while it runs."""
    app = web.Application(middlewares=[echo_request_id])
    app.router.add_get("/healthz", alive)
    app.router.add_post("/api/v1/bookings/hold", hold)
    app.cleanup_ctx.append(stores)
    return app


def main() -> None:
    serve(naive_app(hold, redis_client))


if __name__ == "__main__":
    main()
