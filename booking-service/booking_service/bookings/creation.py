"""Booking a hold: the Stripe deposit before the transaction, and on any failure the
hold given back (compensation); a retry with the same Idempotency-Key replays the first."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from calendence.errors import Conflict, HoldConflict, InvalidInput, Unavailable
from calendence.logs import log_fields
from calendence.schemas.bookings import BookingRequest, BookingStatus
from calendence.schemas.common import parse_json
from calendence.timefmt import utcnow

from booking_service.booking_repository import BookingTerms, InsertedBooking, NewBooking
from booking_service.bookings.base import BookingsBase
from booking_service.bookings.custom_fields import check_custom_fields
from booking_service.bookings.document import render
from booking_service.checkout import Deposit
from booking_service.hold_client import ConsumedHold
from booking_service.outbox import new_event, record_event

log = logging.getLogger("booking_service.bookings")

# Times a booking is written at most when the terms it was written on turned out
# outdated (a deposit asked, custom fields changed), each change once more.
_WRITES = 3
# How long a committed booking's claim confirmation may wait to go with the next
# booking's consume (one call for both) before it goes alone: its pending claim lasts
# seconds, and the answer does not wait for it.
_CONFIRMATION_WAIT_SECONDS = 0.05
# Booking ids of retries with an Idempotency-Key are derived in this namespace.
_RETRY_IDS = uuid.UUID("6f1c7f64-3c55-4c5e-9a0e-4d8f2b7a9c10")


class _SameKeyCommitted(Exception):
    """A concurrent request with the same Idempotency-Key committed first."""


@dataclass(frozen=True)
class _Writing:
    """What writing a booking takes, gathered before its transaction."""

    business_id: UUID
    booking_id: UUID
    hold: ConsumedHold
    request: BookingRequest
    # The custom fields the answers were checked against, and the answers.
    custom_fields: list[dict[str, Any]]
    answers: list[dict[str, Any]]
    idempotency_key: bytes
    request_hash: bytes
    consumed_at: float  # on the monotonic clock: when the hold was consumed


class _DepositAsked(Exception):
    """The service asks a deposit, which the booking was being written without."""


class _CustomFieldsChanged(Exception):
    """The business's custom fields are not those the answers were checked against."""

    def __init__(self, in_force: list[dict[str, Any]]) -> None:
        super().__init__("custom fields changed")
        self.in_force = in_force


class Creation(BookingsBase):
    """Turning a hold into a booking."""

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
        definitions, answers = await self._checked_answers(business_id, request)
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
            document = await self._write(
                _Writing(
                    business_id,
                    booking_id,
                    hold,
                    request,
                    definitions,
                    answers,
                    idempotency_key,
                    request_hash,
                    consumed_at,
                )
            )
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
        # The answer does not wait for the claim's confirmation: the booking is
        # committed, its pending claim keeps the slot meanwhile, and a confirmation
        # that fails is the repair's (repair_claims), as it always was.
        self._confirm_in_background(booking_id, hold.claim, wait_up_to=_CONFIRMATION_WAIT_SECONDS)
        return document, False

    async def _checked_answers(
        self, business_id: UUID, request: BookingRequest
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The custom fields the answers were checked against, and the answers.

        Checked against the fields last seen, the booking's insert says whether they
        still hold; answers those fail are checked again against the fields read now,
        so that outdated ones never refuse a booking."""
        seen = self.seen.custom_fields.get(business_id)
        if seen is not None:
            with contextlib.suppress(InvalidInput):
                return seen, check_custom_fields(seen, request.custom_field_values)
        definitions = await self.repository.custom_fields(business_id)
        self.seen.saw_custom_fields(business_id, definitions)
        return definitions, check_custom_fields(definitions, request.custom_field_values)

    async def _write(self, writing: _Writing) -> dict[str, Any]:
        """Write the booking and its event, after the Stripe checkout when the service
        asks a deposit; the booking's document.

        Most services ask none, so the deposit terms are read first only for a service
        seen asking one. The insert checks the terms it was written on against those in
        force (a service still asking no deposit; the business's custom fields as the
        answers were checked against) and writes nothing if they differ: the booking is
        then written again, with the terms read first or the answers checked again (422
        if they no longer hold); the hold stays this booking's claim meanwhile."""
        read_terms = writing.hold.service_id in self.seen.services_asking_deposits
        for _ in range(_WRITES):
            try:
                return await self._write_once(writing, read_terms=read_terms)
            except _DepositAsked:
                read_terms = True
            except _CustomFieldsChanged as changed:
                self.seen.saw_custom_fields(writing.business_id, changed.in_force)
                answers = check_custom_fields(changed.in_force, writing.request.custom_field_values)
                writing = dataclasses.replace(
                    writing, custom_fields=changed.in_force, answers=answers
                )
        raise Unavailable("the business's booking terms kept changing; nothing was written")

    async def _write_once(self, writing: _Writing, *, read_terms: bool) -> dict[str, Any]:
        business_id, booking_id, hold = writing.business_id, writing.booking_id, writing.hold
        request, idempotency_key = writing.request, writing.idempotency_key
        terms = (
            await self.repository.deposit_terms(business_id, hold.service_id)
            if read_terms
            else None
        )
        session = None
        if terms is not None and terms.amount == 0:
            self.seen.services_asking_deposits.discard(hold.service_id)
        elif terms is not None:
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
        booking = NewBooking(
            id=booking_id,
            business_id=business_id,
            service_id=hold.service_id,
            location_id=hold.location_id,
            staff_id=hold.staff_id,
            resource_id=hold.resource_id,
            hold_id=hold.hold_id,
            # A deposit keeps the booking pending until it is paid.
            status=(BookingStatus.PENDING if session else BookingStatus.CONFIRMED).value,
            starts_at=hold.starts_at,
            ends_at=hold.ends_at,
            blocked_until=hold.blocked_until,
            client_first_name=request.client.first_name,
            client_last_name=request.client.last_name,
            client_email=str(request.client.email),
            client_phone=request.client.phone,
            custom_field_values=writing.answers,
            notes=request.notes,
        )
        written_on = BookingTerms(custom_fields=writing.custom_fields, no_deposit=session is None)
        if self.book_in_one_statement and session is None and not idempotency_key:
            return await self._write_in_one_statement(writing, booking, written_on)
        async with self.pool.acquire() as connection, connection.transaction():
            row = self._written(
                writing,
                await self.repository.insert_booking(
                    connection, booking, self.reminders, written_on
                ),
            )
            if session is not None and terms is not None:
                await self.repository.insert_payment(
                    connection,
                    booking_id,
                    session.id,
                    terms.amount,
                    terms.currency,
                    session.url,
                    session.expires_at,
                )
                row = await self._must_get(business_id, booking_id, connection)
            else:
                row["manage_url"] = self.manage_url(row)
            document = render(row)
            await record_event(connection, "booking.created", business_id, document)
            if idempotency_key and not await self.repository.remember_request(
                connection,
                business_id,
                idempotency_key,
                writing.request_hash,
                booking_id,
                document,
                self.idempotency_ttl_seconds,
            ):
                raise _SameKeyCommitted()
            self._give_up_if_late(writing)
            await self._pause_if_asked("before_commit")
        self.events_committed()
        return document

    async def _write_in_one_statement(
        self, writing: _Writing, booking: NewBooking, written_on: BookingTerms
    ) -> dict[str, Any]:
        """A booking without a deposit or an Idempotency-Key: the booking, its reminders
        and its booking.created event in one statement, one round trip to PostgreSQL.
        The event's data is the booking's row, which the outbox relay renders; the
        answer is rendered from the same row, with the same manage link."""
        manage_url = self.manage_url(
            {"id": booking.id, "status": booking.status, "ends_at": booking.ends_at}
        )
        event = new_event("booking.created", writing.business_id)
        # The last moment to give up: a statement under way is left to finish, as one
        # stopped half-way would leave unknown whether it committed. Should its claim
        # lapse meanwhile, the exclusion constraint still keeps the slot single.
        self._give_up_if_late(writing)
        await self._pause_if_asked("before_commit")
        async with self.pool.acquire() as connection:
            inserted = await self.repository.insert_booking(
                connection, booking, self.reminders, written_on, event, manage_url
            )
        row = self._written(writing, inserted)
        self.events_committed()
        return render(row | {"manage_url": manage_url})

    def _written(self, writing: _Writing, inserted: InsertedBooking) -> dict[str, Any]:
        """The booking the insert wrote; if none, why not, as an exception."""
        if inserted.row is not None:
            return inserted.row
        if not inserted.catalogue_live:
            raise Conflict(
                "the service, location or staff member of this hold was removed after it was placed"
            )
        if inserted.custom_fields_in_force != writing.custom_fields:
            raise _CustomFieldsChanged(inserted.custom_fields_in_force)
        # Live and the same fields: the service asks a deposit it was written without.
        self.seen.services_asking_deposits.add(writing.hold.service_id)
        raise _DepositAsked()

    def _give_up_if_late(self, writing: _Writing) -> None:
        """Committing later could outlive the pending claim: give up instead."""
        if time.monotonic() - writing.consumed_at > self.commit_budget:
            raise Unavailable("the booking took too long; nothing was written")

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

    async def confirmations(self) -> None:
        """Wait for the claims being confirmed for bookings already answered (at
        shutdown, before the channel to hold-service closes)."""
        while self._confirming:
            await asyncio.wait(set(self._confirming))

    async def _give_back(self, business_id: UUID, hold_id: UUID, booking_id: UUID) -> None:
        """Undo a consumed hold when its booking could not be written."""
        try:
            await self.holds.restore(business_id, hold_id, booking_id)
        except Exception as error:  # the hold expires on its own; nothing is lost
            log.warning(
                "could not restore hold", extra=log_fields(hold_id=str(hold_id), error=repr(error))
            )
