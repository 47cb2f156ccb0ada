"""notify-service wiring: its database, the JetStream consumer, the webhook dispatcher,
the servicer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from calendence import rpc
from calendence.logs import log_fields
from calendence.notify.v1 import notify_pb2_grpc
from calendence.settings import NotifyServiceSettings
from calendence.store_startup import connect_nats, connect_postgres, connect_with_retry

from notify_service.consumer import consume_events, ensure_consumer, stream_watermark
from notify_service.deliveries import Deliveries
from notify_service.delivery_repository import DeliveryRepository
from notify_service.dispatcher import Dispatcher, Limits
from notify_service.endpoint_repository import EndpointRepository
from notify_service.endpoints import WebhookEndpoints
from notify_service.grpc_api import NotifyServicer
from notify_service.mailer import Mailer, SmtpServer, messages_wanted
from notify_service.message_repository import MessageRepository
from notify_service.receipts import ReceiptRepository
from notify_service.sender import Sender

log = logging.getLogger("notify_service")

# An attempt's lease: its timeout plus room for recording the result.
_LEASE_MARGIN_SECONDS = 20.0


async def serve(settings: NotifyServiceSettings) -> None:
    pool = await connect_postgres(
        settings.notify_database_url,
        schema="notify_service",
        min_size=1,
        max_size=settings.notify_db_pool_max,
        acquire_timeout=settings.notify_db_pool_acquire_timeout_seconds,
    )
    nc = await connect_nats(settings, "notify-service", events_stream=True)
    js = nc.jetstream()
    await connect_with_retry(
        "nats",
        lambda: ensure_consumer(
            js, settings.nats_stream_replicas, settings.notify_events_ack_wait_seconds
        ),
    )
    if settings.webhooks_allow_private_targets:
        log.warning("webhooks may reach private addresses and http URLs (development only)")
    store = DeliveryRepository(pool)
    sender = Sender(
        settings.webhooks_allow_private_targets,
        settings.webhooks_attempt_timeout_seconds,
        settings.webhooks_max_in_flight,
    )
    dispatcher = Dispatcher(
        store,
        sender.send,
        lambda: stream_watermark(js),
        Limits(
            max_in_flight=settings.webhooks_max_in_flight,
            per_endpoint=settings.webhooks_max_in_flight_per_endpoint,
            poll_seconds=settings.webhooks_poll_seconds,
            lease=timedelta(
                seconds=settings.webhooks_attempt_timeout_seconds + _LEASE_MARGIN_SECONDS
            ),
        ),
    )

    messages = MessageRepository(pool)
    mailer = None
    if settings.smtp_url:
        mailer = Mailer(
            messages,
            SmtpServer.from_url(settings.smtp_url),
            settings.mail_from,
            timeout_seconds=settings.smtp_timeout_seconds,
            poll_seconds=settings.mail_poll_seconds,
            webhooks_busy=dispatcher.busy,
            wait_for_webhooks=timedelta(seconds=settings.mail_wait_for_webhooks_seconds),
        )
        dispatcher.when_idle(mailer.wake)
    else:
        log.warning("SMTP_URL is not set: no client emails (webhooks still go out)")

    async def handle(batch: list[tuple[dict[str, Any], int]]) -> None:
        events = [event for event, _ in batch]
        messages = messages_wanted(events) if mailer is not None else []
        if mailer is None or not messages:
            stored = await store.record_events(batch, messages)
        else:
            stored = await mailer.store_and_send(store.record_events, batch, messages)
        made = stored.deliveries
        if any(made.values()):
            dispatcher.deliveries_stored()
        if log.isEnabledFor(logging.DEBUG):  # one line per event: not at INFO
            for event, _ in batch:
                if event["id"] in made:
                    fields = log_fields(
                        event_id=event["id"], type=event["type"], deliveries=made[event["id"]]
                    )
                    log.debug("event received", extra=fields)

    async def postgres_probe() -> None:
        await pool.fetchval("SELECT 1")

    async def nats_probe() -> None:
        await nc.flush(timeout=1)

    health = rpc.DependencyHealth({"postgres": postgres_probe, "nats": nats_probe})
    servicer = NotifyServicer(
        ReceiptRepository(pool),
        WebhookEndpoints(EndpointRepository(pool), settings.webhooks_allow_private_targets),
        Deliveries(store, dispatcher.wake),
        messages,
    )
    server = rpc.build_server(
        [lambda s: notify_pb2_grpc.add_NotifyServiceServicer_to_server(servicer, s)],
        health,
        settings.notify_service_port,
    )
    async with sender:
        consumer = asyncio.create_task(consume_events(js, handle, dispatcher.events_stored))
        delivering = asyncio.create_task(dispatcher.run())
        mailing = asyncio.create_task(mailer.run()) if mailer is not None else None
        try:
            await rpc.serve_until_signal(server, health, settings.shutdown_grace_seconds)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await dispatcher.stop(settings.shutdown_grace_seconds)
            if mailer is not None and mailing is not None:
                await mailer.stop(settings.shutdown_grace_seconds)
                mailing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await mailing
            delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivering
            await nc.drain()
            await pool.close()
            log.info("stopped")
