"""The `Bookings` domain object: every job on bookings behind one object the gRPC layer calls."""

from __future__ import annotations

from booking_service.bookings.creation import Creation
from booking_service.bookings.sweeps import Sweeps


class Bookings(Creation, Sweeps):
    """Creates, reads, changes, settles and repairs bookings."""
