"""Bookings as iCalendar (RFC 5545): what every calendar file of the platform shares.

Each booking is one VEVENT whose UID never changes, so a calendar app updates the one
appointment in place whichever file it came from (a mail's attachment, the manage page,
a staff feed) as the booking moves or is cancelled; SEQUENCE is the booking's version.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import icalendar

PRODUCT_ID = "-//Calendence//Bookings//EN"
UID_DOMAIN = "calendence.com"
# Booking status -> VEVENT STATUS.
EVENT_STATUS = {
    "pending": "TENTATIVE",
    "confirmed": "CONFIRMED",
    "in_progress": "CONFIRMED",
    "completed": "CONFIRMED",
    "no_show": "CONFIRMED",
    "cancelled": "CANCELLED",
}


def booking_uid(booking_id: UUID | str) -> str:
    return f"{booking_id}@{UID_DOMAIN}"


def new_calendar(name: str | None = None) -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    if name:
        calendar.add("x-wr-calname", name)
    return calendar


def finish(calendar: icalendar.Calendar, first: date, last: date) -> bytes:
    """The file, with a VTIMEZONE for every TZID used (so apps without the IANA database
    agree) covering the events' years only (the whole span bloats every file)."""
    # What icalendar's add_missing_timezones does, but with each VTIMEZONE worked out
    # and serialised once per zone and years: computing one from the tz database costs
    # milliseconds, and serialising one (dozens of lines) most of a one-event file.
    zones = b"".join(
        _vtimezone(tzid, first.year, last.year + 1) for tzid in sorted(calendar.get_missing_tzids())
    )
    text = serialise(calendar)
    if not zones:
        return text
    # Ahead of the calendar's components (RFC 5545 allows any order; this is the one
    # add_missing_timezones gives, and some apps want a zone before its first use).
    at = text.find(b"\r\nBEGIN:", len(b"BEGIN:VCALENDAR"))
    at = text.rindex(b"\r\nEND:VCALENDAR") if at < 0 else at
    return text[: at + 2] + zones + text[at + 2 :]


# RFC 5545's line limit in octets: icalendar folds a line that reaches it.
_FOLD_AT = 75


def serialise(component: icalendar.cal.component.Component) -> bytes:
    """`component.to_ical()`, byte for byte, without its folding of every line: that
    goes character by character (a quarter of a booking's file), and most lines are
    ASCII and too short to fold, so they are written as they are."""
    return b"".join(
        (line.encode() if len(line) < _FOLD_AT and line.isascii() else line.to_ical()) + b"\r\n"
        for line in component.content_lines()
        if line
    )


@functools.lru_cache(maxsize=256)
def _vtimezone(tzid: str, first_year: int, last_year: int) -> bytes:
    """A zone's VTIMEZONE, serialised; empty for a zone icalendar does not know (left
    out, as add_missing_timezones would)."""
    try:
        timezone = icalendar.Timezone.from_tzid(
            tzid, first_date=date(first_year, 1, 1), last_date=date(last_year, 12, 31)
        )
    except ValueError:
        return b""
    return bytes(timezone.to_ical())


def booking_ics(booking: dict[str, Any], business_name: str = "") -> bytes:
    """The client's copy of one booking document (its public shape, times in ISO 8601),
    in the location's time zone."""
    zone = ZoneInfo(booking["location"]["timezone"])
    starts_at = datetime.fromisoformat(booking["starts_at"]).astimezone(zone)
    ends_at = datetime.fromisoformat(booking["ends_at"]).astimezone(zone)
    event = icalendar.Event()
    event.add("uid", booking_uid(booking["id"]))
    event.add("sequence", int(booking.get("version") or 1))
    event.add("dtstamp", datetime.fromisoformat(booking["updated_at"]))
    event.add("dtstart", starts_at)
    event.add("dtend", ends_at)
    service = booking["service"]["name"]
    event.add("summary", f"{service} at {business_name}" if business_name else service)
    location = booking["location"]
    event.add("location", ", ".join(p for p in (location["name"], location["address"]) if p))
    event.add("status", EVENT_STATUS[booking["status"]])
    if booking.get("manage_url"):
        event.add("url", booking["manage_url"])
        event.add("description", f"View, move or cancel: {booking['manage_url']}")
    calendar = new_calendar()
    calendar.add_component(event)
    return finish(calendar, starts_at.date(), ends_at.date())
