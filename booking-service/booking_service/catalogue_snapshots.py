"""Catalogue snapshots in the NATS key-value bucket: how hold-service learns a catalogue.

hold-service checks every slot against its business's snapshot (locations, services,
staff, booking policy, time off to come) and never calls booking-service for it. Each
change leaves a row in `catalogue_changes` in its own transaction (triggers, migration
0050); `publish_change` writes the snapshot right after the commit, so the API call
that made the change answers once the bucket has it. A snapshot that could not be
written then (NATS away, a crash after the commit) is written by `repair_forever`
within seconds, which also gives every business the bucket lacks its snapshot when the
bucket is new to it (at start-up, or after NATS lost its data).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from calendence import jsonfmt
from calendence.cancellation import stop_if_cancelled
from calendence.events import catalogue_key
from calendence.logs import log_fields
from calendence.timefmt import utcnow
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from booking_service.catalogue import snapshot_document
from booking_service.catalogue_repository import CatalogueRepository

log = logging.getLogger("booking_service.catalogue_snapshots")

REPAIR_SECONDS = 2.0
# How long the call that made a change waits for its snapshot to be written, well inside
# the gateway's deadline: past it the change still answers, and the repair writes it.
CHANGE_PUBLISH_SECONDS = 2.0
# Businesses written per repair round at most; a full round starts the next at once.
_REPAIR_BATCH = 100


@dataclass
class CatalogueSnapshots:
    repository: CatalogueRepository
    bucket: KeyValue
    connected: Callable[[], bool]
    clock: Callable[[], datetime] = utcnow

    async def publish(self, business_id: UUID) -> bool:
        """Write the business's snapshot if a committed change is not in it yet."""
        async with self.repository.unpublished_snapshot_rows(business_id, self.clock()) as rows:
            if rows is None:
                return False
            await self.bucket.put(
                catalogue_key(business_id), jsonfmt.dumps(snapshot_document(rows))
            )
            return True

    async def publish_change(self, business_id: UUID) -> None:
        """After a change committed: its snapshot now, or by the repair when NATS fails.

        The change itself is made either way, so its caller is answered with it.
        """
        if not self.connected():
            log.warning(
                "catalogue snapshot left to the repair: NATS unreachable",
                extra=log_fields(business_id=str(business_id)),
            )
            return
        try:
            await asyncio.wait_for(self.publish(business_id), CHANGE_PUBLISH_SECONDS)
        except Exception as error:  # NATS or the database failing: the repair retries
            log.warning(
                "catalogue snapshot left to the repair",
                extra=log_fields(business_id=str(business_id), error=repr(error)),
            )

    async def publish_pending(self) -> int:
        """Snapshots of changes still unpublished, oldest first; returns how many."""
        published = 0
        for business_id in await self.repository.businesses_with_unpublished_changes(_REPAIR_BATCH):
            try:
                published += await self.publish(business_id)
            except Exception as error:  # one failing business does not hold up the rest
                log.warning(
                    "catalogue snapshot not written, retrying",
                    extra=log_fields(business_id=str(business_id), error=repr(error)),
                )
        return published

    async def note_missing(self) -> int:
        """Mark every business whose snapshot the bucket lacks as changed."""
        try:
            keys = await self.bucket.keys()
        except NoKeysError:
            keys = []
        return await self.repository.note_changes_of_businesses_besides([UUID(k) for k in keys])

    async def repair_forever(
        self, open_bucket: Callable[[], Awaitable[KeyValue]], every_seconds: float = REPAIR_SECONDS
    ) -> None:
        """From start-up on: write unpublished snapshots every `every_seconds`, and
        whenever the bucket is one this loop has not seen yet (the first round, or NATS
        made it anew after losing its data), first note each business it lacks."""
        bucket_made_at: datetime | None = None
        while True:
            try:
                self.bucket = await open_bucket()
                made_at = (await self.bucket.status()).stream_info.created
                if made_at != bucket_made_at:
                    missing = await self.note_missing()
                    if missing:
                        log.info(
                            "catalogue snapshots missing from the bucket",
                            extra=log_fields(count=missing),
                        )
                    bucket_made_at = made_at
                published = await self.publish_pending()
            except Exception as error:  # NATS or the database away: next round
                stop_if_cancelled(error)
                log.warning("catalogue snapshot repair failed", extra=log_fields(error=repr(error)))
                published = 0
            if published < _REPAIR_BATCH:
                await asyncio.sleep(every_seconds)
