"""booking-service wiring: stores, domain objects, gRPC servicers, the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import datetime, timedelta

import orjson
from calendence import events, rpc
from calendence.auth.v1 import auth_pb2_grpc
from calendence.booking.v1 import booking_pb2_grpc
from calendence.cancellation import stop_if_cancelled
from calendence.catalogue.v1 import catalogue_pb2_grpc
from calendence.logs import log_fields
from calendence.manage.v1 import manage_pb2_grpc
from calendence.settings import BookingServiceSettings
from calendence.store_startup import connect_nats, connect_postgres, connect_with_retry
from calendence.timefmt import utcnow
from nats.js.kv import KeyValue

from booking_service.booking_repository import BookingRepository
from booking_service.bookings import Bookings
from booking_service.bookings.document import render_stored
from booking_service.bookings_grpc import BookingServicer
from booking_service.calendars import Calendars
from booking_service.catalogue_repository import CatalogueRepository
from booking_service.catalogue_snapshots import CHANGE_PUBLISH_SECONDS, CatalogueSnapshots
from booking_service.checkout import Checkout
from booking_service.domain import build_domain
from booking_service.grpc_api import AuthServicer, CatalogueServicer
from booking_service.hold_client import HoldClient
from booking_service.manage import SelfService, rules_of_businesses
from booking_service.manage_grpc import CalendarServicer, ManageServicer
from booking_service.manage_links import ManageLinks
from booking_service.manage_repository import ManageRepository
from booking_service.outbox import OutboxRelay, RelayWakeup
from booking_service.reminders import ReminderSender

log = logging.getLogger("booking_service")


async def serve(settings: BookingServiceSettings) -> None:
    pool = await connect_postgres(
        settings.database_url,
        schema="booking_service",
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        acquire_timeout=settings.db_pool_acquire_timeout_seconds,
    )
    nc = await connect_nats(settings, "booking-service", events_stream=True)

    async def publish(subject: str, payload: dict[str, str]) -> None:
        await nc.publish(subject, orjson.dumps(payload))

    def open_catalogue_bucket() -> Awaitable[KeyValue]:
        # Its writes give up in time for the change's own answer (catalogue_snapshots).
        return events.ensure_catalogue_bucket(
            nc.jetstream(timeout=CHANGE_PUBLISH_SECONDS), settings.nats_stream_replicas
        )

    catalogue_bucket = await connect_with_retry("nats", open_catalogue_bucket)
    snapshots = CatalogueSnapshots(
        CatalogueRepository(pool), catalogue_bucket, lambda: nc.is_connected
    )
    domain = build_domain(pool, settings, publish, snapshots.publish_change)
    tenants, catalogue, time_off = domain.tenants, domain.catalogue, domain.time_off
    reminders = domain.reminders
    hold_channel = rpc.open_channel(settings.hold_service_addr)
    checkout = Checkout(
        settings.stripe_secret_key, settings.stripe_api_base, settings.stripe_timeout_seconds
    )
    manage_repository = ManageRepository(pool)
    links = ManageLinks(manage_repository, settings.public_base_url)
    await connect_with_retry("postgres", links.load)
    booking_repository = BookingRepository(pool)
    relay_wakeup = RelayWakeup(nc)
    holds = HoldClient(hold_channel)
    bookings = Bookings(
        pool,
        booking_repository,
        holds,
        checkout,
        checkout_expiry=timedelta(seconds=settings.checkout_expiry_seconds),
        fallback_url=settings.checkout_fallback_url,
        reminders=reminders,
        pending_claim=timedelta(seconds=settings.pending_claim_seconds),
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        fault_pause_at=settings.booking_fault_pause_at,
        fault_pause_seconds=settings.booking_fault_pause_seconds,
        book_in_one_statement=settings.book_in_one_statement,
        events_committed=relay_wakeup.events_committed,
        manage_url=links.url_for,
    )
    rules_of = rules_of_businesses(domain.catalogue_repository)
    calendars = Calendars(manage_repository, links, rules_of, settings.public_base_url)
    self_service = SelfService(bookings, links, manage_repository, rules_of)

    async def postgres_probe() -> None:
        await pool.fetchval("SELECT 1")

    async def nats_probe() -> None:
        await nc.flush(timeout=1)

    health = rpc.DependencyHealth({"postgres": postgres_probe, "nats": nats_probe})
    server = rpc.build_server(
        [
            lambda s: auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(tenants), s),
            lambda s: catalogue_pb2_grpc.add_CatalogueServiceServicer_to_server(
                CatalogueServicer(catalogue, tenants, time_off), s
            ),
            lambda s: booking_pb2_grpc.add_BookingServiceServicer_to_server(
                BookingServicer(bookings), s
            ),
            lambda s: manage_pb2_grpc.add_ManageServiceServicer_to_server(
                ManageServicer(self_service, calendars), s
            ),
            lambda s: manage_pb2_grpc.add_CalendarServiceServicer_to_server(
                CalendarServicer(calendars), s
            ),
        ],
        health,
        settings.booking_service_port,
    )
    sweeper = asyncio.create_task(_sweep_forever(bookings, settings.payment_sweep_seconds))
    repair = asyncio.create_task(_repair_claims_forever(bookings, settings.claim_repair_seconds))
    link_keys = asyncio.create_task(_refresh_link_keys_forever(links))
    snapshot_repair = asyncio.create_task(snapshots.repair_forever(open_catalogue_bucket))
    reminding = asyncio.create_task(
        ReminderSender(
            pool,
            reminders,
            booking_repository,
            settings.reminder_poll_seconds,
            relay_wakeup.events_committed,
        ).run()
    )
    relay = None
    if settings.outbox_relay_enabled:
        outbox_relay = OutboxRelay(pool, nc, settings.outbox_poll_seconds, render_stored)
        relay_wakeup.relay_here(outbox_relay)
        relay = asyncio.create_task(outbox_relay.run())
    try:
        await rpc.serve_until_signal(server, health, settings.shutdown_grace_seconds)
    finally:
        sweeper.cancel()
        link_keys.cancel()
        snapshot_repair.cancel()
        repair.cancel()
        reminding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reminding
        if relay is not None:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
        # Calls under way, and holds given back for requests that were gone by then.
        await bookings.confirmations()
        await holds.drain()
        await hold_channel.close(None)
        await nc.drain()
        await pool.close()
        log.info("stopped")


async def _sweep_forever(bookings: Bookings, every_seconds: float) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        try:
            settled = await bookings.sweep_expired_checkouts()
        except Exception as error:  # Stripe or the database away: try next round
            stop_if_cancelled(error)
            log.warning("payment sweep failed", extra={"fields": {"error": repr(error)}})
            continue
        if settled:
            log.info("expired checkouts settled", extra={"fields": {"count": settled}})


# How far back a start looks for released bookings whose slot a crash left claimed: a
# crashed process is restarted within seconds (the supervisor, Kubernetes); an hour
# covers a restart held up by a store being away too.
_RELEASED_LOOKBACK = timedelta(hours=1)


async def _repair_claims_forever(bookings: Bookings, every_seconds: float) -> None:
    """Pending claims near their deadline checked against PostgreSQL, from start-up on
    (a restart after a crash repairs at once); first, the slots of bookings released
    lately, which a crash may have left claimed; and each round, the released slots
    hold-service could not free when they were released."""
    released_since: datetime | None = utcnow() - _RELEASED_LOOKBACK
    while True:
        if released_since is not None:  # until it succeeds once, beside the claim repair
            try:
                freed = await bookings.free_released_claims(released_since)
            except Exception as error:  # hold-service or the database away: next round
                stop_if_cancelled(error)
                log.warning("freeing released slots failed", extra=log_fields(error=repr(error)))
            else:
                log.info("released slots freed", extra=log_fields(count=freed))
                released_since = None
        try:
            if freed := await bookings.free_unfreed():
                log.info("released slots freed on a later try", extra=log_fields(count=freed))
        except Exception as error:  # each slot's failure is kept for the next round already
            stop_if_cancelled(error)
            log.warning("freeing released slots failed", extra=log_fields(error=repr(error)))
        try:
            repaired = await bookings.repair_claims()
        except Exception as error:  # Redis or the database away: next round
            stop_if_cancelled(error)
            log.warning("claim repair failed", extra={"fields": {"error": repr(error)}})
        else:
            if repaired:
                log.info("pending claims confirmed", extra={"fields": {"count": repaired}})
        await asyncio.sleep(every_seconds)


async def _refresh_link_keys_forever(links: ManageLinks, every_seconds: float = 60.0) -> None:
    """Manage-link keys rotated or retired elsewhere (the admin CLI, another replica)."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await links.refresh()
        except Exception as error:  # the database away: keep the keys we have
            stop_if_cancelled(error)
            log.warning("manage link keys not refreshed", extra={"fields": {"error": repr(error)}})
