"""SQL for the reminder schedule: armed in the transaction of each booking change,
claimed when due by one replica at a time per row (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

# The statuses whose bookings have reminders: arming any other schedules none.
REMINDED_STATUSES = ("pending", "confirmed")
# Every reminder of the business that is still ahead, for the bookings the WHERE names
# among `source` (the bookings table, or a statement's freshly inserted rows); `minute`
# is the parameter holding a reminder minute's length in seconds.
_ARM = """
INSERT INTO reminder_schedule (booking_id, business_id, before_minutes, starts_at, due_at)
SELECT b.id, b.business_id, r.before_minutes, b.starts_at,
       b.starts_at - make_interval(secs => r.before_minutes * {minute}::float8)
FROM {source} b
JOIN businesses biz ON biz.id = b.business_id
CROSS JOIN LATERAL jsonb_to_recordset(biz.reminders) AS r(before_minutes integer)
WHERE {target} AND b.status IN {reminded}
  AND b.starts_at - make_interval(secs => r.before_minutes * {minute}::float8) > now()
ON CONFLICT DO NOTHING
"""


_REMINDED_IN_SQL = "(" + ", ".join(f"'{status}'" for status in REMINDED_STATUSES) + ")"


def _arm(target: str, source: str = "bookings", minute: str = "$2") -> str:
    return _ARM.format(target=target, source=source, minute=minute, reminded=_REMINDED_IN_SQL)


@dataclass(frozen=True)
class DueReminder:
    booking_id: UUID
    business_id: UUID
    before_minutes: int
    starts_at: datetime
    due_at: datetime
    # Whether the booking is still one a client should be reminded of.
    live: bool


class ReminderSchedule:
    def __init__(self, minute: timedelta) -> None:
        # The length of a reminder's minute: 60 s, except in tests that cannot wait hours.
        self.minute_seconds = minute.total_seconds()

    @staticmethod
    def arming(source: str, minute: str) -> str:
        """The statement that schedules the reminders of every booking in `source` (a
        CTE of rows just inserted), for a caller that arms them in its own statement;
        `minute` is the parameter that carries `minute_seconds`."""
        return _arm("true", source, minute)

    async def arm(self, connection: asyncpg.Connection, booking_id: UUID) -> None:
        """Schedule the booking's reminders still ahead, inside the transaction that
        made or changed it (a change drops its pending ones first, in its update:
        `BookingRepository.update`). Reminders already sent stay."""
        await connection.execute(_arm("b.id = $1"), booking_id, self.minute_seconds)

    async def rearm_business(self, connection: asyncpg.Connection, business_id: UUID) -> None:
        """After the business changed its reminders: every upcoming booking's anew."""
        await connection.execute(
            "DELETE FROM reminder_schedule WHERE business_id = $1 AND fired_at IS NULL",
            business_id,
        )
        await connection.execute(
            _arm("b.business_id = $1 AND b.starts_at > now()"),
            business_id,
            self.minute_seconds,
        )

    async def claim_due(self, connection: asyncpg.Connection, limit: int) -> list[DueReminder]:
        """Lock due reminders no other replica holds, until the caller's transaction
        ends. A booking being changed right now is skipped (its change re-arms it)."""
        rows = await connection.fetch(
            """
            SELECT r.booking_id, r.business_id, r.before_minutes, r.starts_at, r.due_at,
                   b.status IN ('pending', 'confirmed') AND b.starts_at = r.starts_at AS live
            FROM reminder_schedule r JOIN bookings b ON b.id = r.booking_id
            WHERE r.fired_at IS NULL AND r.due_at <= now()
            ORDER BY r.due_at
            LIMIT $1
            FOR UPDATE OF r SKIP LOCKED
            FOR SHARE OF b SKIP LOCKED
            """,
            limit,
        )
        return [DueReminder(**dict(row)) for row in rows]

    async def mark_fired(
        self, connection: asyncpg.Connection, due: DueReminder, event_id: UUID | None
    ) -> None:
        """Done with: its event written (or none, for a booking no longer live)."""
        await connection.execute(
            """
            UPDATE reminder_schedule SET fired_at = now(), event_id = $4
            WHERE booking_id = $1 AND before_minutes = $2 AND starts_at = $3
            """,
            due.booking_id,
            due.before_minutes,
            due.starts_at,
            event_id,
        )

    async def next_due(self, connection: asyncpg.Connection) -> datetime | None:
        due: datetime | None = await connection.fetchval(
            "SELECT min(due_at) FROM reminder_schedule WHERE fired_at IS NULL"
        )
        return due
