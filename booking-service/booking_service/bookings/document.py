"""The public booking document, for API answers and event payloads alike."""

from __future__ import annotations

from typing import Any

from calendence.schemas.bookings import BookingStatus
from calendence.timefmt import to_iso

from booking_service.booking_repository import booking_from_json


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
        # Where the client views, moves or cancels it; set by Bookings while it works.
        "manage_url": row.get("manage_url"),
    }


def render_stored(stored: dict[str, Any]) -> dict[str, Any]:
    """The document of a booking stored as JSON with its `manage_url`, and `actor` when
    the event names who made the change (the data of an event written in the booking's
    own statement: `BookingRepository.insert_booking` and `update`)."""
    document = render(booking_from_json(stored))
    if "actor" in stored:
        document["actor"] = stored["actor"]
    return document
