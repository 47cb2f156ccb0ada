"""SQL for bookings. Writes take the caller's connection so they share its transaction
with what goes with them, and write their events in their own statement
(`insert_booking`, `update`), or leave them to the caller (`outbox.record_event`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from calendence.schemas.bookings import BookingStatus
from calendence.storage import Repository

from booking_service.outbox import event_insert
from booking_service.reminder_repository import ReminderSchedule

# The booking with what the public document nests: service, location, staff.
_SELECT_FROM = """
SELECT b.*,
       s.name AS service_name, s.duration_minutes, s.price_amount, s.currency,
       s.deposit_amount, s.buffer_minutes,
       l.name AS location_name, l.address AS location_address, l.timezone,
       st.name AS staff_name, st.email AS staff_email,
       p.status AS payment_status, p.amount AS payment_amount,
       p.currency AS payment_currency, p.checkout_session_id, p.checkout_url,
       p.expires_at AS payment_expires_at
FROM {bookings} b
JOIN services s ON s.id = b.service_id
JOIN locations l ON l.id = b.location_id
LEFT JOIN staff st ON st.id = b.staff_id
LEFT JOIN payments p ON p.booking_id = b.id
"""
_SELECT = _SELECT_FROM.format(bookings="bookings")
# A business's custom fields as one JSON array ordered by key: read before a booking,
# and again by the booking's insert, which thus says whether they changed meanwhile.
_CUSTOM_FIELDS_OF = """(
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'key', key, 'label', label, 'type', type, 'required', required,
               'options', options) ORDER BY key), '[]'::jsonb)
    FROM custom_fields WHERE business_id = {business} AND deleted_at IS NULL)"""


# A booking's insert with what goes with it (`BookingRepository.insert_booking`), built
# once: $1-$17 the booking, $18 the reminder minute, $19-$20 the terms it was written on,
# $21-$22 its booking.created event and manage link (NULL: no event).
_INSERT_BOOKING = (
    """
            WITH service AS (SELECT deposit_amount FROM services WHERE id = $3
                             AND business_id = $2 AND deleted_at IS NULL FOR KEY SHARE),
                 location AS (SELECT 1 FROM locations WHERE id = $4 AND business_id = $2
                              AND deleted_at IS NULL FOR KEY SHARE),
                 member AS (SELECT 1 FROM staff WHERE id = $5 AND business_id = $2
                            AND deleted_at IS NULL FOR KEY SHARE),
                 live AS (SELECT EXISTS (SELECT 1 FROM service)
                                 AND EXISTS (SELECT 1 FROM location)
                                 AND ($5::uuid IS NULL OR EXISTS (SELECT 1 FROM member))
                                 AS live),
                 in_force AS (SELECT """
    + _CUSTOM_FIELDS_OF.format(business="$2")
    + """ AS custom_fields),
                 inserted AS (
            INSERT INTO bookings (
                id, business_id, service_id, location_id, staff_id, resource_id, hold_id,
                status, starts_at, ends_at, blocked_until, client_first_name,
                client_last_name, client_email, client_phone, custom_field_values, notes,
                policy)
            SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   -- The rules in force now: the business's, with the service's own on top.
                   (SELECT bu.booking_policy || s.booking_policy
                    FROM services s JOIN businesses bu ON bu.id = s.business_id
                    WHERE s.id = $3 AND bu.id = $2)
            WHERE (SELECT live FROM live)
              AND (SELECT custom_fields FROM in_force) = $19::jsonb
              AND (NOT $20::boolean OR (SELECT deposit_amount FROM service) = 0)
            RETURNING *),
                 armed AS ("""
    + ReminderSchedule.arming("inserted", "$18")
    + "), booked AS ("
    + _SELECT_FROM.format(bookings="inserted")
    + "), announced AS (SELECT * FROM booked WHERE $21::jsonb IS NOT NULL), event AS ("
    + event_insert(
        "announced",
        envelope="$21::jsonb",
        business="$2",
        data="to_jsonb(announced) || jsonb_build_object('manage_url', $22::text)",
    )
    + """)
            SELECT (SELECT to_jsonb(booked) FROM booked) AS booked,
                   (SELECT live FROM live) AS catalogue_live,
                   (SELECT custom_fields FROM in_force) AS custom_fields_in_force,
                   (SELECT deposit_amount FROM service) AS deposit_amount
            """
)


@dataclass(frozen=True)
class AnnouncedChange:
    """An event a change writes with itself (`BookingRepository.update`): its envelope
    (an `outbox.new_event`) and what its data carries beyond the booking."""

    envelope: dict[str, Any]
    extra: dict[str, Any]


@dataclass(frozen=True)
class ReleasedSlot:
    """A released booking's slot, as its claim in Redis names it."""

    id: UUID
    resource_id: str
    starts_at: datetime
    blocked_until: datetime


@dataclass(frozen=True)
class UpdateGuard:
    """What a booking must be for `BookingRepository.update` to change it: of this
    business, in one of these statuses and, when `versions` names any, at one of them."""

    business_id: UUID
    statuses: Collection[BookingStatus]
    versions: Collection[int] | None = None


@dataclass(frozen=True)
class NewBooking:
    id: UUID
    business_id: UUID
    service_id: UUID
    location_id: UUID
    staff_id: UUID | None
    resource_id: str
    hold_id: UUID
    status: str
    starts_at: datetime
    ends_at: datetime
    blocked_until: datetime
    client_first_name: str
    client_last_name: str
    client_email: str
    client_phone: str | None
    custom_field_values: list[dict[str, Any]]
    notes: str | None


@dataclass(frozen=True)
class EarlierRequest:
    """What an Idempotency-Key was first used for."""

    request_hash: bytes
    response: dict[str, Any]


@dataclass(frozen=True)
class DepositTerms:
    amount: int
    currency: str
    service_name: str
    success_url: str | None
    cancel_url: str | None


@dataclass(frozen=True)
class BookingTerms:
    """The terms a booking is written on, which its insert checks are still in force."""

    custom_fields: list[dict[str, Any]]  # the business's, as `custom_fields` reads them
    no_deposit: bool  # written without a deposit: the service must still ask none


@dataclass(frozen=True)
class InsertedBooking:
    """What a booking's insert found. `row`: the booking as `get` reads it (no payment
    yet), or None if it was not written: what its hold named is gone (not
    `catalogue_live`), or the terms in force (the rest) are not those it was written on."""

    row: dict[str, Any] | None
    catalogue_live: bool
    custom_fields_in_force: list[dict[str, Any]]
    deposit_amount: int


# A booking row's columns that JSON carries as text but `get` reads as what they are.
_TIMESTAMP_COLUMNS = (
    "starts_at",
    "ends_at",
    "blocked_until",
    "created_at",
    "updated_at",
    "cancelled_at",
    "payment_expires_at",
)
_UUID_COLUMNS = ("id", "business_id", "service_id", "location_id", "staff_id", "hold_id")


def booking_from_json(stored: dict[str, Any]) -> dict[str, Any]:
    """A booking as `get` reads it, from its JSON form (PostgreSQL's to_jsonb of the
    same row): timestamps and ids made what they are, the rest as it is."""
    row = dict(stored)
    for name in _TIMESTAMP_COLUMNS:
        if row.get(name) is not None:
            row[name] = datetime.fromisoformat(row[name])
    for name in _UUID_COLUMNS:
        if row.get(name) is not None:
            row[name] = UUID(row[name])
    return row


class BookingRepository(Repository):
    async def insert_booking(
        self,
        connection: asyncpg.Connection,
        booking: NewBooking,
        reminders: ReminderSchedule,
        terms: BookingTerms,
        created_event: dict[str, Any] | None = None,
        manage_url: str | None = None,
    ) -> InsertedBooking:
        """Insert the booking, schedule its reminders and, given `created_event` (an
        `outbox.new_event`), add that event with the booking's row as its data (and
        `manage_url`), all in one statement; what it found (`InsertedBooking`). With an
        event, the caller wakes the outbox relay once the statement returned.

        The booking goes in only if what its hold named still exists and the terms it
        was written on are still those in force (the business's custom fields; a service
        still asking no deposit when `terms.no_deposit`). FOR KEY SHARE on the service,
        location and staff rows makes a concurrent delete (FOR UPDATE on the same row)
        wait for this booking, or this for it.
        """
        row = await connection.fetchrow(
            _INSERT_BOOKING,
            booking.id,
            booking.business_id,
            booking.service_id,
            booking.location_id,
            booking.staff_id,
            booking.resource_id,
            booking.hold_id,
            booking.status,
            booking.starts_at,
            booking.ends_at,
            booking.blocked_until,
            booking.client_first_name,
            booking.client_last_name,
            booking.client_email,
            booking.client_phone,
            booking.custom_field_values,
            booking.notes,
            reminders.minute_seconds,
            terms.custom_fields,
            terms.no_deposit,
            created_event,
            manage_url,
        )
        booked = row["booked"]
        return InsertedBooking(
            row=booking_from_json(booked) if booked is not None else None,
            catalogue_live=row["catalogue_live"],
            custom_fields_in_force=list(row["custom_fields_in_force"]),
            deposit_amount=row["deposit_amount"] or 0,
        )

    async def earlier_request(
        self, business_id: UUID, key: bytes, ttl_seconds: int
    ) -> EarlierRequest | None:
        row = await self.db.fetchrow(
            "SELECT request_hash, response FROM booking_idempotency_keys "
            "WHERE business_id = $1 AND idempotency_key = $2 "
            "AND created_at > now() - make_interval(secs => $3)",
            business_id,
            key,
            ttl_seconds,
        )
        return EarlierRequest(bytes(row["request_hash"]), row["response"]) if row else None

    async def remember_request(
        self,
        connection: asyncpg.Connection,
        business_id: UUID,
        key: bytes,
        request_hash: bytes,
        booking_id: UUID,
        response: dict[str, Any],
        ttl_seconds: int,
    ) -> bool:
        """Record the key with its booking; False if a live record of it exists (a
        concurrent request with the same key committed first). An expired one is reused."""
        recorded = await connection.fetchval(
            """
            INSERT INTO booking_idempotency_keys AS k
                (business_id, idempotency_key, request_hash, booking_id, response)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (business_id, idempotency_key) DO UPDATE
                SET request_hash = excluded.request_hash, booking_id = excluded.booking_id,
                    response = excluded.response, created_at = now()
                WHERE k.created_at <= now() - make_interval(secs => $6)
            RETURNING true
            """,
            business_id,
            key,
            request_hash,
            booking_id,
            response,
            ttl_seconds,
        )
        return bool(recorded)

    async def lock_claim(
        self, connection: asyncpg.Connection, booking_id: UUID
    ) -> dict[str, Any] | None:
        """The interval a committed booking blocks, share-locked so that a cancel or a
        reschedule waits until the caller has put its claim in Redis right."""
        row = await connection.fetchrow(
            "SELECT status, resource_id, hold_id, starts_at, blocked_until FROM bookings "
            "WHERE id = $1 FOR SHARE",
            booking_id,
        )
        return dict(row) if row else None

    async def get(
        self, business_id: UUID, booking_id: UUID, connection: asyncpg.Connection | None = None
    ) -> dict[str, Any] | None:
        row = await (connection or self.db).fetchrow(
            _SELECT + "WHERE b.id = $1 AND b.business_id = $2", booking_id, business_id
        )
        return dict(row) if row else None

    async def lock(
        self, connection: asyncpg.Connection, business_id: UUID, booking_id: UUID
    ) -> dict[str, Any] | None:
        """The booking row, locked until the caller's transaction ends."""
        row = await connection.fetchrow(
            "SELECT * FROM bookings WHERE id = $1 AND business_id = $2 FOR UPDATE",
            booking_id,
            business_id,
        )
        return dict(row) if row else None

    async def update(
        self,
        connection: asyncpg.Connection,
        booking_id: UUID,
        changes: dict[str, Any],
        *,
        close_unpaid_checkout: bool = False,
        drop_pending_reminders: bool = False,
        events: Sequence[AnnouncedChange] = (),
        manage_url: str | None = None,
        only_if: UpdateGuard | None = None,
    ) -> tuple[dict[str, Any], str | None] | None:
        """Apply `changes` (the version moves on), in one statement with what goes with
        them, and return the booking as it now is (the row `get` reads, with
        `manage_url`): with `close_unpaid_checkout`, the booking's unpaid deposit is
        marked expired and its checkout session id returned too (None if there was none);
        with `drop_pending_reminders`, its reminders not yet sent are dropped; each of
        `events` is added to the outbox, in order, with the booking's new row (and
        `manage_url`) as its data. With `only_if`, nothing is done, and None returned,
        unless the booking is as the guard says when the statement reaches it."""
        # Column names come from the domain code, never from the request.
        params: list[Any] = [booking_id, manage_url, *changes.values()]
        assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, start=3))
        guard = ""
        if only_if is not None:
            versions = None if only_if.versions is None else list(only_if.versions)
            params += [only_if.business_id, [s.value for s in only_if.statuses], versions]
            n = len(params)
            guard = (
                f" AND business_id = ${n - 2} AND status = ANY(${n - 1}::text[])"
                f" AND (${n}::int[] IS NULL OR version = ANY(${n}::int[]))"
            )
        with_parts = [
            f"updated AS (UPDATE bookings SET {assignments}, version = version + 1, "
            f"updated_at = now() WHERE id = $1{guard} RETURNING *)"
        ]
        # What goes with the change happens only if the booking changed.
        if close_unpaid_checkout:
            with_parts.append(
                "closed AS (UPDATE payments SET status = 'expired', updated_at = now() "
                "WHERE booking_id = (SELECT id FROM updated) AND status = 'requires_payment' "
                "RETURNING checkout_session_id)"
            )
        if drop_pending_reminders:
            with_parts.append(
                "dropped AS (DELETE FROM reminder_schedule "
                "WHERE booking_id = (SELECT id FROM updated) AND fired_at IS NULL)"
            )
        # The document is read from the updated row in the same statement (one round
        # trip less per change); its joins see the statement's snapshot, so a payment
        # this statement expired still reads as unpaid and is set so here.
        expired = (
            "CASE WHEN EXISTS (SELECT 1 FROM closed) "
            """THEN '{"payment_status": "expired"}'::jsonb ELSE '{}'::jsonb END"""
            if close_unpaid_checkout
            else "'{}'::jsonb"
        )
        with_parts.append(
            "booked AS (SELECT to_jsonb(document) || jsonb_build_object('manage_url', $2::text)"
            f" || {expired} AS booked FROM ("
            + _SELECT_FROM.format(bookings="updated")
            + ") document)"
        )
        if events:
            params.append([{"envelope": e.envelope, "extra": e.extra} for e in events])
            with_parts.append(
                "event AS ("
                + event_insert(
                    f"booked, jsonb_array_elements(${len(params)}::jsonb) "
                    "WITH ORDINALITY AS e(announced, n)",
                    envelope="(e.announced->'envelope')",
                    business="(booked.booked->>'business_id')::uuid",
                    data="booked.booked || (e.announced->'extra')",
                    order_by="e.n",
                )
                + ")"
            )
        closed = "(SELECT checkout_session_id FROM closed)" if close_unpaid_checkout else "NULL"
        row = await connection.fetchrow(
            f"WITH {', '.join(with_parts)} SELECT booked, {closed} AS closed_checkout FROM booked",
            *params,
        )
        if row is None:
            return None
        return booking_from_json(row["booked"]), row["closed_checkout"]

    async def released_since(self, since: datetime) -> list[ReleasedSlot]:
        """Bookings released (cancelled, no-show) since `since` whose slot is not over."""
        rows = await self.db.fetch(
            """
            SELECT id, resource_id, starts_at, blocked_until FROM bookings
            WHERE status IN ('cancelled', 'no_show') AND updated_at >= $1
              AND blocked_until > now()
            """,
            since,
        )
        return [ReleasedSlot(**row) for row in rows]

    async def bump_version(self, connection: asyncpg.Connection, booking_id: UUID) -> None:
        await connection.execute(
            "UPDATE bookings SET version = version + 1, updated_at = now() WHERE id = $1",
            booking_id,
        )

    async def list_page(
        self, business_id: UUID, filters: dict[str, Any], after_seq: int, limit: int
    ) -> list[dict[str, Any]]:
        conditions = ["b.business_id = $1", "b.seq > $2"]
        params: list[Any] = [business_id, after_seq]
        for column, operator, value in (
            ("b.status", "=", filters.get("status")),
            ("b.location_id", "=", filters.get("location_id")),
            ("b.staff_id", "=", filters.get("staff_id")),
            ("b.service_id", "=", filters.get("service_id")),
            ("lower(b.client_email)", "=", (filters.get("client_email") or "").lower() or None),
            ("b.starts_at", ">=", filters.get("from")),
            ("b.starts_at", "<", filters.get("to")),
        ):
            if value is not None:
                params.append(value)
                conditions.append(f"{column} {operator} ${len(params)}")
        params.append(limit)
        rows = await self.db.fetch(
            _SELECT + f"WHERE {' AND '.join(conditions)} ORDER BY b.seq LIMIT ${len(params)}",
            *params,
        )
        return [dict(r) for r in rows]

    async def custom_fields(self, business_id: UUID) -> list[dict[str, Any]]:
        """The business's custom fields, ordered by key, as the booking insert also
        returns them (`custom_fields_in_force`)."""
        definitions = await self.db.fetchval(
            f"SELECT {_CUSTOM_FIELDS_OF.format(business='$1')}", business_id
        )
        return list(definitions)

    async def deposit_terms(self, business_id: UUID, service_id: UUID) -> DepositTerms:
        row = await self.db.fetchrow(
            """
            SELECT s.deposit_amount, s.currency, s.name, b.success_url, b.cancel_url
            FROM services s JOIN businesses b ON b.id = s.business_id
            WHERE s.id = $1 AND s.business_id = $2
            """,
            service_id,
            business_id,
        )
        return DepositTerms(
            row["deposit_amount"],
            row["currency"].strip(),
            row["name"],
            row["success_url"],
            row["cancel_url"],
        )

    async def insert_payment(
        self,
        connection: asyncpg.Connection,
        booking_id: UUID,
        session_id: str,
        amount: int,
        currency: str,
        url: str,
        expires_at: datetime,
    ) -> None:
        await connection.execute(
            """
            INSERT INTO payments (booking_id, checkout_session_id, status, amount, currency,
                                  checkout_url, expires_at)
            VALUES ($1, $2, 'requires_payment', $3, $4, $5, $6)
            """,
            booking_id,
            session_id,
            amount,
            currency,
            url,
            expires_at,
        )

    async def remember_stripe_event(
        self, connection: asyncpg.Connection, event_id: str, event_type: str
    ) -> bool:
        """True the first time an event id is seen."""
        inserted = await connection.fetchval(
            "INSERT INTO stripe_events (id, type) VALUES ($1, $2) "
            "ON CONFLICT (id) DO NOTHING RETURNING true",
            event_id,
            event_type,
        )
        return bool(inserted)

    async def lock_payment(
        self, connection: asyncpg.Connection, session_id: str
    ) -> dict[str, Any] | None:
        row = await connection.fetchrow(
            """
            SELECT p.booking_id, p.status, b.business_id
            FROM payments p JOIN bookings b ON b.id = p.booking_id
            WHERE p.checkout_session_id = $1
            FOR UPDATE OF p
            """,
            session_id,
        )
        return dict(row) if row else None

    async def set_payment_status(
        self, connection: asyncpg.Connection, booking_id: UUID, status: str
    ) -> None:
        await connection.execute(
            "UPDATE payments SET status = $2, updated_at = now() WHERE booking_id = $1",
            booking_id,
            status,
        )

    async def expired_checkouts(self, now: datetime, limit: int = 100) -> list[str]:
        rows = await self.db.fetch(
            "SELECT checkout_session_id FROM payments "
            "WHERE status = 'requires_payment' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
            now,
            limit,
        )
        return [r["checkout_session_id"] for r in rows]
