"""Periodic repairs: unpaid bookings whose checkout expired without Stripe's webhook,
claims left pending in Redis by a process that died around its commit, and released
slots that hold-service could not free at the time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from calendence.schemas.bookings import LIVE_STATUSES
from calendence.timefmt import utcnow

from booking_service.booking_repository import ReleasedSlot
from booking_service.bookings.settlement import Settlement
from booking_service.hold_client import Claim

# Hosts' clocks may differ this much when a pending claim's deadline is compared.
_CLOCK_SLACK = timedelta(seconds=2)
_FREES_AT_ONCE = 50


class Sweeps(Settlement):
    """The periodic repairs the server runs."""

    async def sweep_expired_checkouts(self) -> int:
        """Settle unpaid bookings whose checkout expired, had Stripe's webhook never come."""
        settled = 0
        for session_id in await self.repository.expired_checkouts(utcnow()):
            status, payment_status = await self.checkout.outcome(session_id)
            paid = payment_status == "paid"
            if not paid and status == "open":
                await self.checkout.expire(session_id)
            if await self.settle_checkout(f"sweep:{session_id}", "sweep", session_id, paid):
                settled += 1
        return settled

    async def free_released_claims(self, since: datetime) -> int:
        """Free in Redis the slots of bookings released since `since` (cancelled, no-show)
        that are not over yet: a process that died between a release's commit and freeing
        its slot left it claimed. Freeing takes only what is still the booking's, so a
        slot freed already, or held by someone since, is left as it is. Returns how many
        were looked at."""
        released = await self.repository.released_since(since)
        for outcome in await self._free_slots(released):
            if isinstance(outcome, BaseException):
                raise outcome
        return len(released)

    async def free_unfreed(self) -> int:
        """Free the slots that hold-service could not free when their release committed
        (it was away, restarting say); those it still cannot free wait for the next
        round, until their interval is over. Returns how many were freed."""
        slots = list(self._unfreed.values())
        freed = 0
        for slot, outcome in zip(slots, await self._free_slots(slots), strict=True):
            if isinstance(outcome, BaseException):
                if slot.blocked_until > utcnow():
                    continue  # next round
            else:
                freed += 1
            if self._unfreed.get(slot.id) is slot:  # not recorded anew meanwhile
                del self._unfreed[slot.id]
        return freed

    async def _free_slots(self, slots: list[ReleasedSlot]) -> list[BaseException | None]:
        """Each slot freed in Redis (only what is still its booking's), a few calls at a
        time; what each call came to."""
        outcomes: list[BaseException | None] = []
        for first in range(0, len(slots), _FREES_AT_ONCE):
            outcomes += await asyncio.gather(
                *(
                    self.holds.free(slot.id, slot.resource_id, slot.starts_at, slot.blocked_until)
                    for slot in slots[first : first + _FREES_AT_ONCE]
                ),
                return_exceptions=True,
            )
        return outcomes

    async def repair_claims(self) -> int:
        """Compare pending claims near their deadline with PostgreSQL: a committed, live
        booking gets its long claim (it committed but its process died before saying so
        to Redis); one that never committed has lapsed by itself and is forgotten."""
        now = utcnow()
        repaired = 0
        for pending in await self.holds.pending_claims(now + self.pending_claim / 2, 100):
            async with self.pool.acquire() as connection, connection.transaction():
                row = await self.repository.lock_claim(connection, pending.booking_id)
                if row is not None and row["status"] in LIVE_STATUSES:
                    await self.holds.confirm(
                        pending.booking_id,
                        Claim(
                            row["hold_id"],
                            row["resource_id"],
                            row["starts_at"],
                            row["blocked_until"],
                        ),
                        force=True,
                    )
                    repaired += 1
                    continue
            # No booking after the deadline (plus slack for clocks): none can commit
            # any more, since a booking commits before its claim's deadline or not at all.
            if row is not None or pending.deadline < now - _CLOCK_SLACK:
                await self.holds.forget(pending)
        return repaired
