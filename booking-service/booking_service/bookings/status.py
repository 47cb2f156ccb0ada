"""The booking status machine: which status may follow which, and the events it emits."""

from __future__ import annotations

from calendence.schemas.bookings import BookingStatus

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
STATUS_EVENTS = {
    BookingStatus.CONFIRMED: "booking.confirmed",
    BookingStatus.IN_PROGRESS: "booking.updated",
    BookingStatus.COMPLETED: "booking.completed",
    BookingStatus.CANCELLED: "booking.cancelled",
    BookingStatus.NO_SHOW: "booking.no_show",
}
# Statuses that end a booking before it was served: its slot is given back.
RELEASING = (BookingStatus.CANCELLED, BookingStatus.NO_SHOW)
CANCELLABLE = frozenset(s for s, to in TRANSITIONS.items() if BookingStatus.CANCELLED in to)
# Events whose data names who made the change.
EVENTS_WITH_ACTOR = frozenset({"booking.cancelled", "booking.rescheduled"})


def refusal(current: BookingStatus, wanted: BookingStatus) -> str:
    if current is wanted:
        return f"the booking is {current.value} already"
    allowed = sorted(s.value for s in TRANSITIONS[current])
    if not allowed:
        return f"a {current.value} booking cannot change status"
    return (
        f"a {current.value} booking cannot become {wanted.value}; "
        f"it can become {' or '.join(allowed)}"
    )
