"""Sends each due reminder once as a `booking.reminder` event, through the outbox.

Why here, in booking-service's PostgreSQL: the schedule is written in the very
transaction that books, moves or cancels a booking, so it can never disagree with the
booking (a crash leaves both or neither). Firing a reminder is one transaction too:
lock the due row (FOR UPDATE SKIP LOCKED, so replicas share the work and never take
the same row), write its event to the outbox, mark it fired. A replica killed midway
rolls back and the row is due again; NATS being down only delays the outbox relay,
which publishes with the event id as `Nats-Msg-Id`. So each reminder is one event,
never two, never none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from calendence.cancellation import stop_if_cancelled
from calendence.logs import log_fields
from calendence.timefmt import to_iso, utcnow

from booking_service.booking_repository import BookingRepository
from booking_service.bookings import render
from booking_service.outbox import record_event
from booking_service.reminder_repository import DueReminder, ReminderSchedule

log = logging.getLogger("booking_service.reminders")

REMINDER_EVENT = "booking.reminder"
_BATCH = 100


def reminder_document(booking: dict[str, Any], due: DueReminder) -> dict[str, Any]:
    """The event's data: the booking, plus which of its reminders this is."""
    return booking | {
        "reminder": {"before_minutes": due.before_minutes, "due_at": to_iso(due.due_at)}
    }


@dataclass
class ReminderSender:
    pool: asyncpg.Pool
    schedule: ReminderSchedule
    bookings: BookingRepository
    poll_seconds: float
    # Called once reminder events committed: wakes the outbox relay.
    events_committed: Callable[[], None]

    async def fire_due(self) -> int:
        """Write the events of due reminders; how many were taken."""
        announced = False
        async with self.pool.acquire() as connection, connection.transaction():
            due = await self.schedule.claim_due(connection, _BATCH)
            for reminder in due:
                event_id = None
                row = await self.bookings.get(reminder.business_id, reminder.booking_id, connection)
                if reminder.live and row is not None:
                    document = reminder_document(render(row), reminder)
                    event_id = await record_event(
                        connection, REMINDER_EVENT, reminder.business_id, document
                    )
                    announced = True
                await self.schedule.mark_fired(connection, reminder, event_id)
        if announced:
            self.events_committed()
        for reminder in due:
            log.info(
                "reminder due",
                extra=log_fields(
                    booking_id=str(reminder.booking_id),
                    before_minutes=reminder.before_minutes,
                    sent=reminder.live,
                ),
            )
        return len(due)

    async def _wait(self) -> float:
        """Until the next reminder is due, but no longer than a poll interval (a
        booking made meanwhile may bring an earlier one)."""
        async with self.pool.acquire() as connection:
            next_due = await self.schedule.next_due(connection)
        if next_due is None:
            return self.poll_seconds
        return min(self.poll_seconds, max((next_due - utcnow()).total_seconds(), 0.05))

    async def run(self) -> None:
        while True:
            wait = self.poll_seconds
            try:
                if await self.fire_due() == _BATCH:
                    continue
                wait = await self._wait()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # PostgreSQL away: the rows wait for the next round
                stop_if_cancelled(error)
                log.warning("sending reminders failed", extra=log_fields(error=repr(error)))
            await asyncio.sleep(wait)
