"""A booking as an iCalendar (RFC 5545) file, for calendar apps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import icalendar

PRODUCT_ID = "-//Calendence//Bookings//EN"


def booking_ics(booking: dict[str, Any], business_name: str = "") -> bytes:
    """One VEVENT for the booking document (the public shape, times in ISO 8601). Its
    UID is the booking's, so a calendar updates one entry as the booking moves or is
    cancelled (STATUS:CANCELLED)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", f"{booking['id']}@calendence")
    event.add("dtstamp", datetime.fromisoformat(booking["updated_at"]))
    event.add("dtstart", datetime.fromisoformat(booking["starts_at"]))
    event.add("dtend", datetime.fromisoformat(booking["ends_at"]))
    service = booking["service"]["name"]
    event.add("summary", f"{service} at {business_name}" if business_name else service)
    location = booking["location"]
    event.add("location", ", ".join(p for p in (location["name"], location["address"]) if p))
    event.add("status", "CANCELLED" if booking["status"] == "cancelled" else "CONFIRMED")
    if booking.get("manage_url"):
        event.add("url", booking["manage_url"])
        event.add("description", f"Change or cancel: {booking['manage_url']}")
    calendar.add_component(event)
    return bytes(calendar.to_ical())
