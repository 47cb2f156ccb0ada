"""The tenants and catalogue domain objects on one database pool, built one way for the
service (`booking_service.server`) and the operator's CLI (`booking_service.admin`).

Tenants announces revocations on NATS through `publish`, so every gateway drops a
revoked key at once; the catalogue and time off tell `on_catalogue_change` of each
committed change, which writes the business's snapshot for hold-service
(`booking_service.catalogue_snapshots`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import asyncpg
from calendence import events
from calendence.settings import BookingServiceSettings

from booking_service.catalogue import Catalogue, ChangeListener
from booking_service.catalogue_repository import CatalogueRepository
from booking_service.reminder_repository import ReminderSchedule
from booking_service.tenant_repository import TenantRepository
from booking_service.tenants import Tenants
from booking_service.time_off import TimeOffEntries
from booking_service.time_off_repository import TimeOffRepository

# Sends one event: its NATS subject and JSON payload.
Publish = Callable[[str, dict[str, str]], Awaitable[None]]


@dataclass(frozen=True)
class Domain:
    tenants: Tenants
    catalogue: Catalogue
    time_off: TimeOffEntries
    catalogue_repository: CatalogueRepository
    reminders: ReminderSchedule


def build_domain(
    pool: asyncpg.Pool,
    settings: BookingServiceSettings,
    publish: Publish,
    on_catalogue_change: ChangeListener,
) -> Domain:
    async def announce_revocation(key_id: UUID) -> None:
        await publish(events.KEY_REVOKED_SUBJECT, {"key_id": str(key_id)})

    reminders = ReminderSchedule(timedelta(seconds=settings.reminder_minute_seconds))
    catalogue_repository = CatalogueRepository(pool)
    return Domain(
        tenants=Tenants(
            TenantRepository(pool, reminders),
            timedelta(seconds=settings.session_ttl_seconds),
            announce_revocation,
        ),
        catalogue=Catalogue(catalogue_repository, on_catalogue_change),
        time_off=TimeOffEntries(TimeOffRepository(pool), on_catalogue_change),
        catalogue_repository=catalogue_repository,
        reminders=reminders,
    )
