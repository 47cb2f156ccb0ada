"""notify-service wiring: its database, the JetStream consumer, the servicer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from calendence import events, rpc
from calendence.logs import log_fields
from calendence.migrations import migrate
from calendence.notify.v1 import notify_pb2_grpc
from calendence.settings import NotifyServiceSettings
from calendence.storage import open_pool

from notify_service.consumer import consume_events, ensure_consumer
from notify_service.grpc_api import NotifyServicer
from notify_service.receipts import ReceiptRepository

log = logging.getLogger("notify_service")


async def serve(settings: NotifyServiceSettings) -> None:
    dsn = settings.notify_database_url
    await rpc.connect_with_retry("postgres", lambda: migrate(dsn, "notify_service"))
    pool: asyncpg.Pool = await rpc.connect_with_retry("postgres", lambda: open_pool(dsn, 1, 5))
    nc = await rpc.connect_with_retry(
        "nats", lambda: events.connect(settings.nats_url, "notify-service")
    )
    js = nc.jetstream()
    await rpc.connect_with_retry("nats", lambda: events.ensure_events_stream(js))
    await rpc.connect_with_retry("nats", lambda: ensure_consumer(js))
    receipts = ReceiptRepository(pool)

    async def handle(event: dict[str, Any]) -> None:
        if await receipts.record(event):
            log.info("event received", extra=log_fields(event_id=event["id"], type=event["type"]))

    consumer = asyncio.create_task(consume_events(js, handle))

    async def postgres_probe() -> None:
        await pool.fetchval("SELECT 1")

    async def nats_probe() -> None:
        await nc.flush(timeout=1)

    health = rpc.DependencyHealth({"postgres": postgres_probe, "nats": nats_probe})
    server = rpc.build_server(
        [
            lambda s: notify_pb2_grpc.add_NotifyServiceServicer_to_server(
                NotifyServicer(receipts), s
            )
        ],
        health,
        settings.notify_service_port,
    )
    try:
        await rpc.serve_until_signal(server, health, settings.shutdown_grace_seconds)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await nc.drain()
        await pool.close()
        log.info("stopped")
