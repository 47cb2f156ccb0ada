"""Settling a deposit: Stripe's checkout outcome confirms or cancels a pending booking."""

from __future__ import annotations

from calendence.schemas.bookings import Actor, BookingPatch, BookingStatus

from booking_service.bookings.changes import Change, Changes


class Settlement(Changes):
    """Acting on Stripe's checkout outcome."""

    async def settle_checkout(
        self, event_id: str, event_type: str, session_id: str, paid: bool
    ) -> bool:
        """Confirm a paid booking or cancel an unpaid one; each Stripe event acts once.

        Out-of-order events are harmless: a payment moves only out of
        `requires_payment`, and a booking only out of `pending`."""
        change = Change(actor=Actor.SYSTEM)
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
