"""Bookings: made from holds, moved, confirmed, completed and cancelled.

Every change is written in one transaction with its domain event (transactional
outbox), so a booking never changes without its event, nor the other way round.
PostgreSQL's exclusion constraint is the last line against double booking, whatever
happened to the holds in Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from calendence.errors import (
    Conflict,
    HoldConflict,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Unavailable,
)
from calendence.logs import log_fields
from calendence.pages import PageRequest
from calendence.schemas.bookings import (
    LIVE_STATUSES,
    Actor,
    BookingFilters,
    BookingPatch,
    BookingRequest,
    BookingStatus,
    CustomFieldValue,
)
from calendence.schemas.common import parse_json
from calendence.timefmt import to_iso, utcnow

from booking_service.booking_repository import BookingRepository, NewBooking
from booking_service.checkout import Checkout, Deposit
from booking_service.hold_client import Claim, HoldClient
from booking_service.outbox import record_event
from booking_service.reminder_repository import ReminderSchedule

log = logging.getLogger("booking_service.bookings")

# status -> the statuses it may move to (cancellation is allowed from every live one).
TRANSITIONS: dict[BookingStatus, set[BookingStatus]] = {
    BookingStatus.PENDING: {
        BookingStatus.CONFIRMED,
        BookingStatus.CANCELLED,
        BookingStatus.NO_SHOW,
    },
    BookingStatus.CONFIRMED: {
        BookingStatus.IN_PROGRESS,
        BookingStatus.CANCELLED,
        BookingStatus.NO_SHOW,
    },
    BookingStatus.IN_PROGRESS: {BookingStatus.COMPLETED, BookingStatus.CANCELLED},
    BookingStatus.COMPLETED: set(),
    BookingStatus.CANCELLED: set(),
    BookingStatus.NO_SHOW: set(),
}
_STATUS_EVENTS = {
    BookingStatus.CONFIRMED: "booking.confirmed",
    BookingStatus.IN_PROGRESS: "booking.updated",
    BookingStatus.COMPLETED: "booking.completed",
    BookingStatus.CANCELLED: "booking.cancelled",
    BookingStatus.NO_SHOW: "booking.no_show",
}
# Statuses that end a booking before it was served: its slot is given back.
_RELEASING = (BookingStatus.CANCELLED, BookingStatus.NO_SHOW)
# Booking ids of retries with an Idempotency-Key are derived in this namespace.
_RETRY_IDS = uuid.UUID("6f1c7f64-3c55-4c5e-9a0e-4d8f2b7a9c10")
# Hosts' clocks may differ this much when a pending claim's deadline is compared.
_CLOCK_SLACK = timedelta(seconds=2)


class _SameKeyCommitted(Exception):
    """A concurrent request with the same Idempotency-Key committed first."""


# Events whose data names who made the change.
_EVENTS_WITH_ACTOR = frozenset({"booking.cancelled", "booking.rescheduled"})


def render(row: dict[str, Any]) -> dict[str, Any]:
    """The public booking document, for API answers and event payloads alike."""
    payment = None
    if row["payment_status"] is not None:
        payment = {
            "status": row["payment_status"],
            "amount": row["payment_amount"],
            "currency": row["payment_currency"].strip(),
            "checkout_session_id": row["checkout_session_id"],
            "expires_at": to_iso(row["payment_expires_at"]),
        }
    awaiting_payment = (
        row["payment_status"] == "requires_payment" and row["status"] == BookingStatus.PENDING
    )
    staff = None
    if row["staff_id"] is not None:
        staff = {"id": str(row["staff_id"]), "name": row["staff_name"], "email": row["staff_email"]}
    return {
        "object": "booking",
        "id": str(row["id"]),
        "business_id": str(row["business_id"]),
        "status": row["status"],
        "starts_at": to_iso(row["starts_at"]),
        "ends_at": to_iso(row["ends_at"]),
        "service": {
            "id": str(row["service_id"]),
            "name": row["service_name"],
            "duration_minutes": row["duration_minutes"],
            "price_amount": row["price_amount"],
            "currency": row["currency"].strip(),
            "deposit_amount": row["deposit_amount"],
        },
        "location": {
            "id": str(row["location_id"]),
            "name": row["location_name"],
            "address": row["location_address"],
            "timezone": row["timezone"],
        },
        "staff": staff,
        "client": {
            "first_name": row["client_first_name"],
            "last_name": row["client_last_name"],
            "email": row["client_email"],
            "phone": row["client_phone"],
        },
        "custom_field_values": row["custom_field_values"],
        "notes": row["notes"],
        "payment": payment,
        # Where to send the client to pay the deposit, while it is unpaid.
        "redirect_url": row["checkout_url"] if awaiting_payment else None,
        "hold_id": str(row["hold_id"]) if row["hold_id"] else None,
        "created_at": to_iso(row["created_at"]),
        "updated_at": to_iso(row["updated_at"]),
        "cancelled_at": to_iso(row["cancelled_at"]) if row["cancelled_at"] else None,
        "cancellation_reason": row["cancellation_reason"],
        "cancelled_by": row["cancelled_by"],
        # The booking rules in force when it was made; later changes leave it alone.
        "policy": row["policy"],
        "version": row["version"],
        # Where the client views, moves or cancels it; set by BookingDesk while it works.
        "manage_url": row.get("manage_url"),
    }


def check_custom_fields(
    definitions: list[dict[str, Any]], values: list[CustomFieldValue]
) -> list[dict[str, Any]]:
    """The answers, checked against the business's custom fields."""
    by_key = {d["key"]: d for d in definitions}
    errors: dict[str, str] = {}
    given: dict[str, Any] = {}
    for index, answer in enumerate(values):
        field = f"custom_field_values.{index}"
        definition = by_key.get(answer.key)
        if definition is None:
            errors[f"{field}.key"] = "no such custom field"
        elif answer.key in given:
            errors[f"{field}.key"] = "answered twice"
        elif reason := _type_error(definition, answer.value):
            errors[f"{field}.value"] = reason
        given[answer.key] = answer.value
    for definition in definitions:
        if definition["required"] and definition["key"] not in given:
            errors[f"custom_field_values.{definition['key']}"] = "required"
    if errors:
        raise InvalidInput("the custom field values are not valid", fields=errors)
    return [{"key": key, "value": value} for key, value in given.items()]


def _type_error(definition: dict[str, Any], value: object) -> str | None:
    kind = definition["type"]
    if kind == "boolean" and not isinstance(value, bool):
        return "must be true or false"
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "must be a number"
    if kind == "text" and not isinstance(value, str):
        return "must be text"
    if kind == "select" and value not in definition["options"]:
        return f"must be one of {', '.join(definition['options'])}"
    return None


class BookingDesk:
    def __init__(
        self,
        pool: asyncpg.Pool,
        repository: BookingRepository,
        holds: HoldClient,
        checkout: Checkout,
        *,
        checkout_expiry: timedelta,
        fallback_url: str,
        reminders: ReminderSchedule,
        manage_url: Callable[[dict[str, Any]], str | None] = lambda row: None,
        pending_claim: timedelta = timedelta(seconds=20),
        idempotency_ttl_seconds: int = 24 * 3600,
        fault_pause_at: str = "",
    ) -> None:
        self.pool = pool
        self.reminders = reminders
        self.pending_claim = pending_claim
        # A booking commits within three quarters of its pending claim or not at all.
        self.commit_budget = pending_claim.total_seconds() * 0.75
        self.idempotency_ttl_seconds = idempotency_ttl_seconds
        self.fault_pause_at = fault_pause_at
        self.repository = repository
        self.holds = holds
        self.checkout = checkout
        self.checkout_expiry = checkout_expiry
        self.fallback_url = fallback_url
        # The client's manage link for a booking row (None once it no longer works).
        self.manage_url = manage_url

    async def create(
        self,
        business_id: UUID,
        body: bytes,
        *,
        holder_id: str = "",
        idempotency_key: bytes = b"",
    ) -> tuple[dict[str, Any], bool]:
        """Book a hold; the booking and whether it is an earlier request's, replayed.

        `holder_id` empty means a business or hub key books (any hold of the business);
        a session books only its own. With an Idempotency-Key the key is recorded with
        the booking, and a retry is answered from PostgreSQL whatever Redis forgot."""
        request = parse_json(BookingRequest, body)
        request_hash = hashlib.sha256(body).digest()
        if idempotency_key:
            earlier = await self._earlier(business_id, idempotency_key, request_hash)
            if earlier is not None:
                return earlier, True
        answers = check_custom_fields(
            await self.repository.custom_fields(business_id), request.custom_field_values
        )
        # A retry of the same request books under the same id: after a crash before
        # commit it takes over the claim its first attempt left pending.
        booking_id = (
            uuid.uuid5(_RETRY_IDS, f"{business_id}/{request.hold_id}/{idempotency_key.hex()}")
            if idempotency_key
            else uuid.uuid4()
        )
        consumed_at = time.monotonic()
        hold = await self.holds.consume(
            business_id,
            request.hold_id,
            booking_id,
            holder_id=holder_id,
            pending=self.pending_claim,
        )
        await self._pause_if_asked("after_consume")
        try:
            terms = await self.repository.deposit_terms(business_id, hold.service_id)
            session = None
            if terms.amount > 0:
                # Before the transaction: if Stripe is down nothing is written and the
                # client keeps the hold to try again.
                session = await self.checkout.start(
                    Deposit(
                        booking_id=booking_id,
                        amount=terms.amount,
                        currency=terms.currency,
                        description=f"Deposit: {terms.service_name}",
                        client_email=str(request.client.email),
                        success_url=terms.success_url or self.fallback_url,
                        cancel_url=terms.cancel_url or self.fallback_url,
                        expires_at=utcnow() + self.checkout_expiry,
                    )
                )
            async with self.pool.acquire() as connection, connection.transaction():
                if not await self.repository.insert_if_catalogue_live(
                    connection,
                    NewBooking(
                        id=booking_id,
                        business_id=business_id,
                        service_id=hold.service_id,
                        location_id=hold.location_id,
                        staff_id=hold.staff_id,
                        resource_id=hold.resource_id,
                        hold_id=hold.hold_id,
                        # A deposit keeps the booking pending until it is paid.
                        status=(
                            BookingStatus.PENDING if session else BookingStatus.CONFIRMED
                        ).value,
                        starts_at=hold.starts_at,
                        ends_at=hold.ends_at,
                        blocked_until=hold.blocked_until,
                        client_first_name=request.client.first_name,
                        client_last_name=request.client.last_name,
                        client_email=str(request.client.email),
                        client_phone=request.client.phone,
                        custom_field_values=answers,
                        notes=request.notes,
                    ),
                ):
                    raise Conflict(
                        "the service, location or staff member of this hold "
                        "was removed after it was placed"
                    )
                if session is not None:
                    await self.repository.insert_payment(
                        connection,
                        booking_id,
                        session.id,
                        terms.amount,
                        terms.currency,
                        session.url,
                        session.expires_at,
                    )
                await self.reminders.arm(connection, booking_id)
                document = render(await self._must_get(business_id, booking_id, connection))
                await record_event(connection, "booking.created", business_id, document)
                if idempotency_key and not await self.repository.remember_request(
                    connection,
                    business_id,
                    idempotency_key,
                    request_hash,
                    booking_id,
                    document,
                    self.idempotency_ttl_seconds,
                ):
                    raise _SameKeyCommitted()
                # Committing later could outlive the pending claim: give up instead.
                if time.monotonic() - consumed_at > self.commit_budget:
                    raise Unavailable("the booking took too long; nothing was written")
                await self._pause_if_asked("before_commit")
        except (_SameKeyCommitted, asyncpg.UniqueViolationError):
            return await self._committed_meanwhile(
                business_id, idempotency_key, request_hash, booking_id, hold.hold_id
            )
        except asyncpg.ExclusionViolationError:
            await self._give_back(business_id, hold.hold_id, booking_id)
            raise HoldConflict("the slot was booked meanwhile") from None
        except BaseException:
            await self._give_back(business_id, hold.hold_id, booking_id)
            raise
        await self._pause_if_asked("after_commit")
        await self._confirm_claim(booking_id, hold.claim)
        return document, False

    async def _committed_meanwhile(
        self,
        business_id: UUID,
        idempotency_key: bytes,
        request_hash: bytes,
        booking_id: UUID,
        hold_id: UUID,
    ) -> tuple[dict[str, Any], bool]:
        """A concurrent request with the same key committed first: replay its booking.
        When that is this very booking id its claim is shared, so it is not given back."""
        try:
            earlier = (
                await self._earlier(business_id, idempotency_key, request_hash)
                if idempotency_key
                else None
            )
        except BaseException:
            await self._give_back(business_id, hold_id, booking_id)
            raise
        if earlier is None or earlier["id"] != str(booking_id):
            await self._give_back(business_id, hold_id, booking_id)
        if earlier is None:
            raise Conflict("the hold was used by another booking meanwhile")
        return earlier, True

    async def _earlier(
        self, business_id: UUID, key: bytes, request_hash: bytes
    ) -> dict[str, Any] | None:
        """The booking an earlier request with this Idempotency-Key made, if any."""
        earlier = await self.repository.earlier_request(
            business_id, key, self.idempotency_ttl_seconds
        )
        if earlier is None:
            return None
        if earlier.request_hash != request_hash:
            raise InvalidInput(
                "this Idempotency-Key was used with another request",
                fields={"Idempotency-Key": "already used with a different body or path"},
            )
        return earlier.response

    async def _pause_if_asked(self, point: str) -> None:
        """Fault injection for crash tests: hang here, even past the caller's deadline,
        until the process is killed."""
        if self.fault_pause_at != point:
            return
        log.warning("fault injection: paused", extra=log_fields(point=point))
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    async def _confirm_claim(self, booking_id: UUID, claim: Claim) -> None:
        """Make a committed booking's claim last until the booking ends; if this fails
        the claim stays pending and the repair (repair_claims) confirms it."""
        try:
            if await self.holds.confirm(booking_id, claim, force=False):
                return
            reason = "the claim is no longer the booking's"
        except Exception as error:
            reason = repr(error)
        log.warning(
            "claim left pending for the repair",
            extra=log_fields(booking_id=str(booking_id), error=reason),
        )

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

    async def _give_back(self, business_id: UUID, hold_id: UUID, booking_id: UUID) -> None:
        """Undo a consumed hold when its booking could not be written."""
        try:
            await self.holds.restore(business_id, hold_id, booking_id)
        except Exception as error:  # the hold expires on its own; nothing is lost
            log.warning(
                "could not restore hold", extra=log_fields(hold_id=str(hold_id), error=repr(error))
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
        filters = parse_json(BookingFilters, filters_json or b"{}")
        page = PageRequest.of(cursor, limit)
        rows = await self.repository.list_page(
            business_id, filters.model_dump(by_alias=True), page.after, page.fetch
        )
        shown, next_cursor = page.cut(rows)
        return [render(r | {"manage_url": self.manage_url(r)}) for r in shown], next_cursor

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
        return await self.update(
            business_id,
            booking_id,
            BookingPatch(status=BookingStatus.CANCELLED, cancellation_reason=reason),
            if_match,
            actor=actor,
        )

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
        change = _Change(actor=actor)
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                document = await self._apply(
                    connection, business_id, booking_id, patch, change, if_match
                )
        except asyncpg.ExclusionViolationError:
            await self._move_back(business_id, booking_id, change.moved)
            raise HoldConflict("the new time clashes with another booking") from None
        except BaseException:
            await self._move_back(business_id, booking_id, change.moved)
            raise
        await self._after_commit(booking_id, change)
        return document

    async def _apply(
        self,
        connection: asyncpg.Connection,
        business_id: UUID,
        booking_id: UUID,
        patch: BookingPatch,
        change: _Change,
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
                raise Conflict(_refusal(status, patch.status))
            if patch.status is BookingStatus.NO_SHOW and current["starts_at"] > utcnow():
                raise Conflict("a booking becomes a no-show only once its start time has passed")
            changes["status"] = patch.status.value
            events.append(_STATUS_EVENTS[patch.status])
            if patch.status is BookingStatus.CANCELLED:
                changes["cancelled_at"] = utcnow()
                changes["cancellation_reason"] = patch.cancellation_reason
                changes["cancelled_by"] = change.actor.value
            if patch.status in _RELEASING:
                # An unpaid deposit must not be payable for a cancelled booking.
                change.unpaid_checkout = await self.repository.close_unpaid_checkout(
                    connection, booking_id
                )
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
            blocked_until = await self.holds.move(
                business_id=business_id,
                booking_id=booking_id,
                resource_id=current["resource_id"],
                service_id=current["service_id"],
                location_id=current["location_id"],
                staff_id=current["staff_id"],
                previous=(current["starts_at"], current["blocked_until"]),
                starts_at=starts_at,
                ends_at=ends_at,
            )
            change.moved = _Move(current, starts_at, ends_at, blocked_until)
            changes |= {"starts_at": starts_at, "ends_at": ends_at, "blocked_until": blocked_until}
            events.append("booking.rescheduled")
        if patch.notes is not None and patch.notes != current["notes"]:
            changes["notes"] = patch.notes
            events.append("booking.updated")
        if changes:
            await self.repository.update(connection, booking_id, changes)
            if changes.keys() & {"status", "starts_at"}:
                await self.reminders.rearm(connection, booking_id)
        document = render(await self._must_get(business_id, booking_id, connection))
        for event in dict.fromkeys(events):
            data = (
                document | {"actor": change.actor.value}
                if event in _EVENTS_WITH_ACTOR
                else document
            )
            await record_event(connection, event, business_id, data)
        return document

    async def _after_commit(self, booking_id: UUID, change: _Change) -> None:
        if change.freed is not None:
            await self._free(booking_id, *change.freed)
        if change.unpaid_checkout is not None:
            try:
                await self.checkout.expire(change.unpaid_checkout)
            except Exception as error:  # the sweeper-free path: Stripe expires it anyway
                log.warning(
                    "could not expire the checkout of a cancelled booking",
                    extra=log_fields(booking_id=str(booking_id), error=repr(error)),
                )

    async def settle_checkout(
        self, event_id: str, event_type: str, session_id: str, paid: bool
    ) -> bool:
        """Confirm a paid booking or cancel an unpaid one; each Stripe event acts once.

        Out-of-order events are harmless: a payment moves only out of
        `requires_payment`, and a booking only out of `pending`."""
        change = _Change(actor=Actor.SYSTEM)
        async with self.pool.acquire() as connection, connection.transaction():
            if not await self.repository.remember_stripe_event(connection, event_id, event_type):
                return False
            payment = await self.repository.lock_payment(connection, session_id)
            if payment is None or payment["status"] != "requires_payment":
                return False
            business_id, booking_id = payment["business_id"], payment["booking_id"]
            await self.repository.set_payment_status(
                connection, booking_id, "paid" if paid else "expired"
            )
            booking = await self.repository.lock(connection, business_id, booking_id)
            if booking is None or booking["status"] != BookingStatus.PENDING:
                if booking is not None:
                    # Its payment changed, so the booking document did.
                    await self.repository.bump_version(connection, booking_id)
                return True
            wanted = BookingStatus.CONFIRMED if paid else BookingStatus.CANCELLED
            await self._apply(
                connection, business_id, booking_id, BookingPatch(status=wanted), change
            )
        await self._after_commit(booking_id, change)
        return True

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

    async def _free(
        self, booking_id: UUID, resource_id: str, starts_at: datetime, blocked_until: datetime
    ) -> None:
        try:
            await self.holds.free(booking_id, resource_id, starts_at, blocked_until)
        except Exception as error:
            # PostgreSQL already let the slot go; Redis keeps it only until blocked_until.
            log.warning(
                "could not free the slot in hold-service",
                extra=log_fields(booking_id=str(booking_id), error=repr(error)),
            )

    async def _move_back(self, business_id: UUID, booking_id: UUID, moved: _Move | None) -> None:
        """Put a booking's claim in Redis back where PostgreSQL still has it."""
        if moved is None:
            return
        old = moved.before
        try:
            await self.holds.move(
                business_id=business_id,
                booking_id=booking_id,
                resource_id=old["resource_id"],
                service_id=old["service_id"],
                location_id=old["location_id"],
                staff_id=old["staff_id"],
                previous=(moved.starts_at, moved.blocked_until),
                starts_at=old["starts_at"],
                ends_at=old["ends_at"],
            )
        except Exception as error:  # PostgreSQL still guards the slot; Redis lags only
            log.warning(
                "could not move the claim back",
                extra=log_fields(booking_id=str(booking_id), error=repr(error)),
            )


@dataclass
class _Change:
    """What a change did in Redis, to undo on failure or finish after commit."""

    actor: Actor = Actor.BUSINESS
    moved: _Move | None = None
    freed: tuple[str, datetime, datetime] | None = None
    unpaid_checkout: str | None = None


@dataclass(frozen=True)
class _Move:
    """A reschedule claimed in Redis but not yet committed in PostgreSQL."""

    before: dict[str, Any]
    starts_at: datetime
    ends_at: datetime
    blocked_until: datetime


def _refusal(current: BookingStatus, wanted: BookingStatus) -> str:
    if current is wanted:
        return f"the booking is {current.value} already"
    allowed = sorted(s.value for s in TRANSITIONS[current])
    if not allowed:
        return f"a {current.value} booking cannot change status"
    return (
        f"a {current.value} booking cannot become {wanted.value}; "
        f"it can become {' or '.join(allowed)}"
    )
