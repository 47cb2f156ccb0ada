"""What every part of `Bookings` shares: its dependencies and the reads."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from calendence.errors import NotFound
from calendence.logs import log_fields
from calendence.pages import filtered_page
from calendence.schemas.bookings import BookingFilters

from booking_service.booking_repository import BookingRepository, ReleasedSlot
from booking_service.bookings.document import render
from booking_service.bookings.seen import SeenTerms
from booking_service.checkout import Checkout
from booking_service.hold_client import Claim, HoldClient
from booking_service.reminder_repository import ReminderSchedule

log = logging.getLogger("booking_service.bookings")


@dataclass(eq=False)
class BookingsBase:
    """The dependencies every job on bookings uses, and reading bookings."""

    pool: asyncpg.Pool
    repository: BookingRepository
    holds: HoldClient
    checkout: Checkout
    _: KW_ONLY
    checkout_expiry: timedelta
    fallback_url: str
    reminders: ReminderSchedule
    # The client's manage link for a booking row (None once it no longer works).
    manage_url: Callable[[dict[str, Any]], str | None] = lambda row: None
    pending_claim: timedelta = timedelta(seconds=20)
    idempotency_ttl_seconds: int = 24 * 3600
    fault_pause_at: str = ""
    fault_pause_seconds: float = 0.0
    # Bookings without a deposit or an Idempotency-Key written in one statement.
    book_in_one_statement: bool = True
    # Called once what wrote outbox events committed: wakes the relay
    # (`outbox.RelayWakeup.events_committed`).
    events_committed: Callable[[], None] = lambda: None
    # What this process last saw of businesses' terms (deposits, custom fields).
    seen: SeenTerms = field(default_factory=SeenTerms, init=False, repr=False)
    # Claims being confirmed for bookings already answered.
    _confirming: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    # Released bookings whose slot hold-service could not free when they committed (it
    # was away): the periodic repair frees them once it is back (`Sweeps.free_unfreed`).
    _unfreed: dict[UUID, ReleasedSlot] = field(default_factory=dict, init=False, repr=False)

    @property
    def commit_budget(self) -> float:
        """A booking commits within three quarters of its pending claim or not at all."""
        return self.pending_claim.total_seconds() * 0.75

    async def _pause_if_asked(self, point: str) -> None:
        """Fault injection for crash tests: hang here, even past the caller's deadline,
        until the process is killed (or for `fault_pause_seconds`, then go on)."""
        if self.fault_pause_at != point:
            return
        log.warning("fault injection: paused", extra=log_fields(point=point))
        if self.fault_pause_seconds:
            await asyncio.sleep(self.fault_pause_seconds)
            return
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    def _confirm_in_background(
        self,
        booking_id: UUID,
        claim: Claim,
        *,
        moved_from: tuple[datetime, datetime] | None = None,
        wait_up_to: float = 0.0,
    ) -> asyncio.Task[None]:
        """`_confirm_claim` as a task the service waits for at shutdown: what an answer
        need not (or no longer) wait for still happens."""
        confirming = asyncio.get_running_loop().create_task(
            self._confirm_claim(booking_id, claim, moved_from=moved_from, wait_up_to=wait_up_to)
        )
        self._confirming.add(confirming)
        confirming.add_done_callback(self._confirming.discard)
        return confirming

    async def _confirm_claim(
        self,
        booking_id: UUID,
        claim: Claim,
        *,
        moved_from: tuple[datetime, datetime] | None = None,
        wait_up_to: float = 0.0,
    ) -> None:
        """Make a committed booking's claim last until the booking ends (and free the
        interval a reschedule `moved_from`); if this fails the claim stays pending and
        the repair (repair_claims) confirms it."""
        try:
            if await self.holds.confirm(
                booking_id, claim, force=False, moved_from=moved_from, wait_up_to=wait_up_to
            ):
                return
            reason = "the claim is no longer the booking's"
        except Exception as error:
            reason = repr(error)
        log.warning(
            "claim left pending for the repair",
            extra=log_fields(booking_id=str(booking_id), error=reason),
        )

    async def _must_get(
        self, business_id: UUID, booking_id: UUID, connection: asyncpg.Connection | None = None
    ) -> dict[str, Any]:
        row = await self.repository.get(business_id, booking_id, connection)
        if row is None:
            raise NotFound("no such booking")
        row["manage_url"] = self.manage_url(row)
        return row

    async def get(self, business_id: UUID, booking_id: UUID) -> dict[str, Any]:
        return render(await self._must_get(business_id, booking_id))

    async def list_page(
        self, business_id: UUID, filters_json: bytes, cursor: str, limit: int
    ) -> tuple[list[dict[str, Any]], str]:
        read = functools.partial(self.repository.list_page, business_id)
        shown, next_cursor = await filtered_page(BookingFilters, filters_json, cursor, limit, read)
        return [render(r | {"manage_url": self.manage_url(r)}) for r in shown], next_cursor
