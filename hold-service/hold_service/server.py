"""hold-service wiring: Redis, the catalogue bucket, its cache and watch, the servicer.

hold-service calls no other service: catalogues come from the NATS key-value bucket
booking-service writes (`calendence.events.CATALOGUE_BUCKET`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

import nats.errors
import orjson
from calendence import events, rpc
from calendence.errors import Unavailable
from calendence.hold.v1 import hold_pb2_grpc
from calendence.logs import log_fields
from calendence.settings import HoldServiceSettings
from calendence.store_startup import connect_nats, connect_redis, connect_with_retry
from calendence.timefmt import utcnow
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from hold_service.catalogue_cache import CatalogueCache
from hold_service.grpc_api import HoldServicer
from hold_service.hold_repository import HoldRepository
from hold_service.holds import Holds

log = logging.getLogger("hold_service")

CATALOGUE_READ_SECONDS = 2.0


async def _follow_changes(watcher: KeyValue.KeyWatcher, cache: CatalogueCache) -> None:
    """Drop each cached snapshot the bucket has a newer revision of."""
    async for entry in watcher:
        if entry is None:
            continue  # the end of what the bucket held when the watch began
        try:
            business_id = UUID(entry.key)
        except ValueError:
            continue  # not a business's snapshot
        cache.changed(business_id, entry.revision or 0)


async def serve(settings: HoldServiceSettings) -> None:
    redis = await connect_redis(
        settings, settings.redis_pool_max, settings.redis_pool_timeout_seconds
    )
    nc = await connect_nats(settings, "hold-service")
    # Reads give up well inside the gateway's deadline: a NATS that does not answer
    # makes a hold 503, never a hang.
    js = nc.jetstream(timeout=CATALOGUE_READ_SECONDS)
    bucket = await connect_with_retry(
        "nats", lambda: events.ensure_catalogue_bucket(js, settings.nats_stream_replicas)
    )

    def link() -> int | None:
        return int(nc.stats["reconnects"]) if nc.is_connected else None

    async def read_catalogue(business_id: UUID) -> tuple[int, dict[str, Any]]:
        try:
            entry = await bucket.get(events.catalogue_key(business_id))
        except KeyNotFoundError:
            # Written with the business; only a NATS that lost its data lacks it, until
            # booking-service's repair writes it again.
            raise Unavailable("this business's catalogue is not available yet") from None
        except nats.errors.Error as error:
            log.warning("catalogue not read", extra=log_fields(error=repr(error)))
            raise Unavailable("the catalogue store is unreachable; try again shortly") from None
        snapshot: dict[str, Any] = orjson.loads(entry.value or b"{}")
        return entry.revision or 0, snapshot

    cache = CatalogueCache(read_catalogue, settings.catalogue_cache_seconds, link)
    watcher = await connect_with_retry("nats", lambda: bucket.watchall(meta_only=True))
    watching = asyncio.create_task(_follow_changes(watcher, cache))
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
        watching.cancel()
        await nc.drain()
        await redis.aclose()
        log.info("stopped")
