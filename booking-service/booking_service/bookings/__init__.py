"""Bookings: made from holds, moved, confirmed, completed and cancelled.

Every change is written in one transaction with its domain event (transactional
outbox), so a booking never changes without its event, nor the other way round.
PostgreSQL's exclusion constraint is the last line against double booking, whatever
happened to the holds in Redis.

One module per job: `document` (the public booking document), `custom_fields`
(answers checked against a business's fields), `status` (the status machine),
`creation` (booking a hold, with its Stripe deposit and compensation), `changes`
(updates, reschedules and cancellations), `settlement` (Stripe's checkout outcome),
`sweeps` (expired checkouts and pending claims); `desk` puts them together.
"""

from booking_service.bookings.desk import Bookings
from booking_service.bookings.document import render

__all__ = ["Bookings", "render"]
