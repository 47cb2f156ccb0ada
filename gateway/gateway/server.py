"""gateway wiring: the aiohttp application, its downstream channels, revocations."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from aiohttp import web
from calendence import events, rpc
from calendence.settings import GatewaySettings
from calendence.storage import open_redis
from calendence.store_startup import connect_nats, connect_redis
from nats.aio.msg import Msg
from redis.exceptions import RedisClusterException, RedisError

from gateway.appkeys import AUTHENTICATOR, DOWNSTREAM, HOLD_PLACER, NATS, REDIS, SETTINGS
from gateway.auth import Authenticator
from gateway.downstream import Downstream
from gateway.hold_placer import HoldPlacer
from gateway.http_io import MAX_BODY_BYTES
from gateway.idempotency import IDEMPOTENCY, IdempotencyRepository
from gateway.metrics import observe_gc_pauses
from gateway.middleware import MIDDLEWARES
from gateway.openapi import build_document
from gateway.protocol_errors import GatewayRunner
from gateway.rate_limits import RATE_LIMITER, RateLimiter
from gateway.routes import (
    bookings,
    calendar,
    catalogue,
    docs,
    health,
    holds,
    manage,
    stripe_webhooks,
    tenancy,
    time_off,
    webhooks,
)

log = logging.getLogger("gateway")


def build_app(settings: GatewaySettings) -> web.Application:
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    # Bookings first: the docs list the routes in this order.
    for route_table in (
        holds.routes,
        bookings.routes,
        tenancy.routes,
        catalogue.routes,
        time_off.routes,
        webhooks.routes,
        stripe_webhooks.routes,
        manage.routes,
        manage.page_routes,
        calendar.routes,
        health.routes,
        health.operator_routes,
        docs.routes,
        docs.page_routes(),
    ):
        app.add_routes(route_table)
    # Built once from the routes just registered; an undescribed route stops the start.
    app[docs.OPENAPI_DOCUMENT] = orjson.dumps(build_document(app))
    app.cleanup_ctx.append(_downstream)
    return app


async def _downstream(app: web.Application):  # type: ignore[no-untyped-def]
    settings = app[SETTINGS]
    downstream = Downstream.connect(settings)
    app[DOWNSTREAM] = downstream
    placer = HoldPlacer(
        downstream.holds,
        timeout=settings.rpc_timeout_seconds,
        in_flight=settings.hold_batches_in_flight,
        batch_max=settings.hold_batch_max,
    )
    app[HOLD_PLACER] = placer
    authenticator = Authenticator(
        downstream.auth, settings.auth_cache_seconds, settings.rpc_timeout_seconds
    )
    app[AUTHENTICATOR] = authenticator
    nc = await connect_nats(settings, "gateway")
    app[NATS] = nc
    redis = await connect_redis(
        settings, settings.gateway_redis_pool_max, settings.gateway_redis_pool_timeout_seconds
    )
    app[REDIS] = redis
    app[IDEMPOTENCY] = IdempotencyRepository(redis, settings.idempotency_ttl_seconds)
    # Its own pool with short waits: a silent or saturated Redis must not stall every
    # request; the limiter falls back to this replica's own buckets instead.
    limits_wait = settings.rate_limit_redis_timeout_seconds
    limits_redis = open_redis(
        settings.rate_limit_redis_url or settings.redis_url,
        settings.rate_limit_redis_pool_max,
        limits_wait,
        socket_timeout=limits_wait,
    )
    # A cluster client learns the slot layout on its first command: do it now, not in
    # a request's short budget. A Redis down now is the limiter's fallback's business.
    with contextlib.suppress(RedisError, RedisClusterException, OSError):
        await asyncio.wait_for(limits_redis.ping(), 5 * limits_wait)
    limiter = RateLimiter(limits_redis, settings)
    app[RATE_LIMITER] = limiter

    async def on_revoked(message: Msg) -> None:
        authenticator.revoke(orjson.loads(message.data)["key_id"])

    await nc.subscribe(events.KEY_REVOKED_SUBJECT, cb=on_revoked)
    yield
    await nc.drain()
    await placer.batches.drain()
    await limiter.close()
    await limits_redis.aclose()
    await redis.aclose()
    await downstream.close()


async def serve(settings: GatewaySettings) -> None:
    runner = GatewayRunner(
        build_app(settings), access_log=None, shutdown_timeout=settings.shutdown_grace_seconds
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port, backlog=1024)
    await site.start()
    observe_gc_pauses()
    log.info(
        "serving",
        extra={"fields": {"url": f"http://{settings.gateway_host}:{settings.gateway_port}"}},
    )
    await rpc.wait_for_shutdown_signal()
    log.info("shutting down")
    # Stops accepting, lets in-flight requests finish (up to the grace), closes channels.
    await runner.cleanup()
    log.info("stopped")
