"""hold-service wiring: Redis, the catalogue cache and its invalidation, the servicer."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
from calendence import events, rpc
from calendence.catalogue.v1 import catalogue_pb2, catalogue_pb2_grpc
from calendence.hold.v1 import hold_pb2_grpc
from calendence.settings import HoldServiceSettings
from calendence.store_startup import connect_nats, connect_redis
from calendence.timefmt import utcnow
from nats.aio.msg import Msg

from hold_service.catalogue_cache import CatalogueCache
from hold_service.grpc_api import HoldServicer
from hold_service.hold_repository import HoldRepository
from hold_service.holds import Holds

log = logging.getLogger("hold_service")

CATALOGUE_FETCH_SECONDS = 3.0


async def serve(settings: HoldServiceSettings) -> None:
    redis = await connect_redis(
        settings.redis_url,
        settings.redis_pool_max,
        settings.redis_pool_timeout_seconds,
        health_check_interval=30,
    )
    nc = await connect_nats(settings, "hold-service")
    booking_channel = rpc.open_channel(settings.booking_service_addr)
    catalogue_stub = catalogue_pb2_grpc.CatalogueServiceStub(booking_channel)

    async def fetch_catalogue(business_id: UUID) -> dict[str, Any]:
        # Waits out a booking-service restart (the channel reconnecting) rather than
        # failing the hold, and still answers before the gateway's own deadline.
        answer = await rpc.unary(
            catalogue_stub.GetBusinessCatalogue,
            catalogue_pb2.GetBusinessCatalogueRequest(business_id=str(business_id)),
            timeout=CATALOGUE_FETCH_SECONDS,
            wait_for_ready=True,
        )
        snapshot: dict[str, Any] = orjson.loads(answer.json)
        return snapshot

    cache = CatalogueCache(fetch_catalogue, settings.catalogue_cache_seconds)

    async def on_catalogue_change(message: Msg) -> None:
        cache.invalidate(UUID(orjson.loads(message.data)["business_id"]))

    await nc.subscribe(events.CATALOGUE_CHANGED_SUBJECT, cb=on_catalogue_change)
    holds = Holds(
        HoldRepository(redis), cache, timedelta(seconds=settings.hold_ttl_seconds), utcnow
    )

    async def redis_probe() -> None:
        await redis.ping()

    async def nats_probe() -> None:
        await nc.flush(timeout=1)

    health = rpc.DependencyHealth({"redis": redis_probe, "nats": nats_probe})
    server = rpc.build_server(
        [lambda s: hold_pb2_grpc.add_HoldServiceServicer_to_server(HoldServicer(holds), s)],
        health,
        settings.hold_service_port,
    )
    try:
        await rpc.serve_until_signal(server, health, settings.shutdown_grace_seconds)
    finally:
        await nc.drain()
        await booking_channel.close(None)
        await redis.aclose()
        log.info("stopped")
