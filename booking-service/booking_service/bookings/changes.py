"""Changing a booking: status moves, reschedules and notes, each with its events. A
reschedule claims its new time in Redis pending before the commit and confirms it
(freeing the old time) after; a released slot is freed after commit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from calendence.errors import Conflict, HoldConflict, NotFound, PreconditionFailed, Unavailable
from calendence.logs import log_fields
from calendence.schemas.bookings import LIVE_STATUSES, Actor, BookingPatch, BookingStatus
from calendence.timefmt import utcnow

from booking_service.booking_repository import AnnouncedChange, ReleasedSlot, UpdateGuard
from booking_service.bookings.base import BookingsBase
from booking_service.bookings.document import render
from booking_service.bookings.status import (
    CANCELLABLE,
    EVENTS_WITH_ACTOR,
    RELEASING,
    STATUS_EVENTS,
    TRANSITIONS,
    refusal,
)
from booking_service.hold_client import Claim
from booking_service.outbox import new_event, record_event
from booking_service.reminder_repository import REMINDED_STATUSES

log = logging.getLogger("booking_service.bookings")

# How long a reschedule's answer waits for the confirmation of its new time (which
# frees the old): far above the milliseconds it takes, and well within the gateway's
# 5-second deadline, so that a hold-service that stops answering right after the commit
# costs the client a slower 200, not a 503 for a move that was made.
_MOVE_CONFIRMATION_ANSWER_SECONDS = 2.0


class Changes(BookingsBase):
    """Changing and cancelling bookings."""

    async def cancel(
        self,
        business_id: UUID,
        booking_id: UUID,
        reason: str | None = None,
        if_match: Collection[int] | None = None,
        *,
        actor: Actor = Actor.BUSINESS,
    ) -> dict[str, Any]:
        """Cancel a live booking; cancelling a cancelled one changes nothing."""
        if self.book_in_one_statement:  # off: an older relay would publish a row unrendered
            cancelled = await self._cancel_in_one_statement(
                business_id, booking_id, reason, if_match, actor
            )
            if cancelled is not None:
                return cancelled
        # A refusal, a second DELETE, a rolling upgrade: the change as any other.
        return await self.update(
            business_id,
            booking_id,
            BookingPatch(status=BookingStatus.CANCELLED, cancellation_reason=reason),
            if_match,
            actor=actor,
        )

    async def _cancel_in_one_statement(
        self,
        business_id: UUID,
        booking_id: UUID,
        reason: str | None,
        if_match: Collection[int] | None,
        actor: Actor,
    ) -> dict[str, Any] | None:
        """A booking that can be cancelled, cancelled in one statement with its event, its
        unpaid deposit and reminders (no transaction's round trips, no row read first);
        None, having changed nothing, when it was not in a state to be (`update` says why)."""
        async with self.pool.acquire() as connection:
            updated = await self.repository.update(
                connection,
                booking_id,
                _cancellation(reason, actor),
                close_unpaid_checkout=True,
                drop_pending_reminders=True,
                events=[
                    AnnouncedChange(
                        new_event(STATUS_EVENTS[BookingStatus.CANCELLED], business_id),
                        {"actor": actor.value},
                    )
                ],
                manage_url=None,  # a cancelled booking's link no longer works
                only_if=UpdateGuard(business_id, CANCELLABLE, if_match),
            )
        if updated is None:
            return None
        row, closed_checkout = updated
        change = Change(
            actor=actor,
            freed=(row["resource_id"], row["starts_at"], row["blocked_until"]),
            announced=True,
            unpaid_checkout=closed_checkout,
        )
        await self._after_commit(booking_id, change)
        return render(row)

    async def update(
        self,
        business_id: UUID,
        booking_id: UUID,
        patch: BookingPatch,
        if_match: Collection[int] | None = None,
        *,
        actor: Actor = Actor.BUSINESS,
    ) -> dict[str, Any]:
        """Apply `patch`; with `if_match`, only while the booking's version is one of it."""
        change = Change(actor=actor)
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                document = await self._apply(
                    connection, business_id, booking_id, patch, change, if_match
                )
                if change.moved is not None:
                    await self._pause_if_asked("move_before_commit")
                    # Committing later could outlive the new interval's pending claim.
                    if time.monotonic() - change.moved.claimed_at > self.commit_budget:
                        raise Unavailable("the reschedule took too long; nothing was changed")
        except asyncpg.ExclusionViolationError:
            await self._move_back(booking_id, change.moved)
            raise HoldConflict("the new time clashes with another booking") from None
        except BaseException:
            await self._move_back(booking_id, change.moved)
            raise
        await self._after_commit(booking_id, change)
        return document

    async def _apply(
        self,
        connection: asyncpg.Connection,
        business_id: UUID,
        booking_id: UUID,
        patch: BookingPatch,
        change: Change,
        if_match: Collection[int] | None = None,
    ) -> dict[str, Any]:
        """Apply a change inside the caller's transaction, with its events."""
        current = await self.repository.lock(connection, business_id, booking_id)
        if current is None:
            raise NotFound("no such booking")
        # Under the row lock: of two changes made against one version, one wins.
        if if_match is not None and current["version"] not in if_match:
            raise PreconditionFailed(
                f"the booking is at version {current['version']}, not the one If-Match names; "
                "fetch it again"
            )
        status = BookingStatus(current["status"])
        if patch.status is BookingStatus.CANCELLED is status:
            # DELETE twice: the second changes nothing and answers the same.
            return render(await self._must_get(business_id, booking_id, connection))
        changes: dict[str, Any] = {}
        events: list[str] = []
        if patch.status is not None:
            if patch.status not in TRANSITIONS[status]:
                raise Conflict(refusal(status, patch.status))
            if patch.status is BookingStatus.NO_SHOW and current["starts_at"] > utcnow():
                raise Conflict("a booking becomes a no-show only once its start time has passed")
            changes["status"] = patch.status.value
            events.append(STATUS_EVENTS[patch.status])
            if patch.status is BookingStatus.CANCELLED:
                changes |= _cancellation(patch.cancellation_reason, change.actor)
            if patch.status in RELEASING:
                change.freed = (
                    current["resource_id"],
                    current["starts_at"],
                    current["blocked_until"],
                )
        if patch.starts_at is not None or patch.ends_at is not None:
            if status not in LIVE_STATUSES or change.freed is not None:
                raise Conflict(f"a {status.value} booking cannot be rescheduled")
            starts_at = patch.starts_at or current["starts_at"]
            ends_at = patch.ends_at or starts_at + (current["ends_at"] - current["starts_at"])
            blocked_until = await self._move_claim(
                business_id, booking_id, current, (starts_at, ends_at)
            )
            change.moved = Move(current, starts_at, ends_at, blocked_until, time.monotonic())
            changes |= {"starts_at": starts_at, "ends_at": ends_at, "blocked_until": blocked_until}
            events.append("booking.rescheduled")
        if patch.notes is not None and patch.notes != current["notes"]:
            changes["notes"] = patch.notes
            events.append("booking.updated")
        if not changes:
            return render(await self._must_get(business_id, booking_id, connection))
        rearming = bool(changes.keys() & {"status", "starts_at"})
        announced = [
            AnnouncedChange(
                new_event(event, business_id),
                {"actor": change.actor.value} if event in EVENTS_WITH_ACTOR else {},
            )
            for event in dict.fromkeys(events)
        ]
        updated = await self.repository.update(
            connection,
            booking_id,
            changes,
            # An unpaid deposit must not be payable for a cancelled booking.
            close_unpaid_checkout=change.freed is not None,
            # A booking's pending reminders follow its time and status: those of the
            # new time are armed below (a cancelled booking keeps none).
            drop_pending_reminders=rearming,
            # Off during a rolling upgrade: an older relay would publish a row unrendered.
            events=announced if self.book_in_one_statement else (),
            manage_url=self.manage_url(current | changes),
        )
        assert updated is not None, "no guard, and the booking is locked"
        row, closed_checkout = updated
        document = render(row)
        if not self.book_in_one_statement:
            for event in announced:
                await record_event(
                    connection, event.envelope["type"], business_id, document | event.extra
                )
        change.announced = bool(announced)
        if change.freed is not None:
            change.unpaid_checkout = closed_checkout
        if rearming and changes.get("status", status.value) in REMINDED_STATUSES:
            await self.reminders.arm(connection, booking_id)
        return document

    async def _after_commit(self, booking_id: UUID, change: Change) -> None:
        if change.announced:
            self.events_committed()
        if (moved := change.moved) is not None:
            # A crash here leaves the new interval pending and the old one claimed: the
            # repair (repair_claims) confirms the one and frees the other.
            await self._pause_if_asked("move_after_commit")
            # The answer waits, so that the old time is free for others once it is
            # given; but not for a hold-service that does not answer (frozen, or cut
            # off): the move is committed, and the confirmation still goes through
            # when it answers, or the repair makes it.
            confirming = self._confirm_in_background(
                booking_id,
                _claim(moved.before, moved.starts_at, moved.blocked_until),
                moved_from=(moved.before["starts_at"], moved.before["blocked_until"]),
            )
            await asyncio.wait({confirming}, timeout=_MOVE_CONFIRMATION_ANSWER_SECONDS)
        if change.freed is not None:
            # A crash here leaves the slot claimed in Redis: the next start frees it
            # (`Sweeps.free_released_claims`).
            await self._pause_if_asked("release_after_commit")
            await self._free(booking_id, *change.freed)
        if change.unpaid_checkout is not None:
            try:
                await self.checkout.expire(change.unpaid_checkout)
            except Exception as error:  # the sweeper-free path: Stripe expires it anyway
                log.warning(
                    "could not expire the checkout of a cancelled booking",
                    extra=log_fields(booking_id=str(booking_id), error=repr(error)),
                )

    async def _free(
        self, booking_id: UUID, resource_id: str, starts_at: datetime, blocked_until: datetime
    ) -> None:
        try:
            # The release is committed: its answer does not wait for a hold-service that
            # is away (the gateway would give up on it and answer 503).
            await self.holds.free(
                booking_id, resource_id, starts_at, blocked_until, wait_for_hold_service=False
            )
        except Exception as error:
            # PostgreSQL already let the slot go; until Redis does too nobody can hold it,
            # so the periodic repair tries again.
            self._unfreed[booking_id] = ReleasedSlot(
                booking_id, resource_id, starts_at, blocked_until
            )
            log.warning(
                "could not free the slot in hold-service; trying again shortly",
                extra=log_fields(booking_id=str(booking_id), error=repr(error)),
            )

    async def _move_claim(
        self,
        business_id: UUID,
        booking_id: UUID,
        booking: dict[str, Any],
        to: tuple[datetime, datetime],
    ) -> datetime:
        """Claim the interval `to` (start and end) in Redis for the booking's resource,
        service, location and staff member, pending until the move commits and is
        confirmed; returns the new blocked end."""
        return await self.holds.move(
            business_id=business_id,
            booking_id=booking_id,
            resource_id=booking["resource_id"],
            service_id=booking["service_id"],
            location_id=booking["location_id"],
            staff_id=booking["staff_id"],
            previous=(booking["starts_at"], booking["blocked_until"]),
            starts_at=to[0],
            ends_at=to[1],
            pending=self.pending_claim,
        )

    async def _move_back(self, booking_id: UUID, moved: Move | None) -> None:
        """A move that did not commit: the booking's claim stays where PostgreSQL still
        has it, and the new interval is freed at once (else it lapses by itself)."""
        if moved is None:
            return
        old = moved.before
        await self._confirm_claim(
            booking_id,
            _claim(old, old["starts_at"], old["blocked_until"]),
            moved_from=(moved.starts_at, moved.blocked_until),
        )


def _claim(booking: dict[str, Any], starts_at: datetime, blocked_until: datetime) -> Claim:
    return Claim(booking["hold_id"], booking["resource_id"], starts_at, blocked_until)


def _cancellation(reason: str | None, actor: Actor) -> dict[str, Any]:
    """A cancellation's changes to the booking's row."""
    return {
        "status": BookingStatus.CANCELLED.value,
        "cancelled_at": utcnow(),
        "cancellation_reason": reason,
        "cancelled_by": actor.value,
    }


@dataclass
class Change:
    """What a change did, to undo on failure or finish after commit."""

    actor: Actor = Actor.BUSINESS
    moved: Move | None = None
    freed: tuple[str, datetime, datetime] | None = None
    # Events were written with the change.
    announced: bool = False
    unpaid_checkout: str | None = None


@dataclass(frozen=True)
class Move:
    """A reschedule claimed in Redis (pending) but not yet confirmed there."""

    before: dict[str, Any]
    starts_at: datetime
    ends_at: datetime
    blocked_until: datetime
    # When the new interval's pending claim was taken (time.monotonic()).
    claimed_at: float
