"""Calendar files and client emails are built from cached parts: they must come out as
the libraries would build them whole."""

from __future__ import annotations

import email
import uuid
from datetime import date, datetime
from email.message import Message
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from aiosmtplib.email import flatten_message
from calendence.ics import booking_ics, finish, new_calendar, serialise
from notify_service import mail

# A moved booking without staff, address or manage link: the optional parts left out.
BOOKING: dict[str, Any] = {
    "id": "0f8e2a70-5d7c-4b8e-9a43-2a1d6c3b9e10",
    "version": 2,
    "status": "confirmed",
    "starts_at": "2027-03-28T09:00:00+00:00",
    "ends_at": "2027-03-28T10:15:00+00:00",
    "updated_at": "2027-01-04T09:00:00+00:00",
    "client": {"first_name": "Léa", "last_name": "Roy", "email": "lea@example.com"},
    "service": {"name": "Colour"},
    "location": {"name": "Studio", "address": None, "timezone": "Europe/Paris"},
    "staff": None,
}


def feed_in(zones: list[str]) -> icalendar.Calendar:
    calendar = new_calendar("Staff")
    for number, zone in enumerate(zones):
        event = icalendar.Event()
        event.add("uid", f"{number}@calendence.test")
        event.add("dtstart", datetime(2027, 3 + number, 1, 10, tzinfo=ZoneInfo(zone)))
        calendar.add_component(event)
    return calendar


def parts_of(file: bytes) -> tuple[set[bytes], list[bytes]]:
    """A calendar file's VTIMEZONEs (in any order) and its other components, in order."""
    calendar = icalendar.Calendar.from_ical(file)
    zones = {c.to_ical() for c in calendar.subcomponents if c.name == "VTIMEZONE"}
    return zones, [c.to_ical() for c in calendar.subcomponents if c.name != "VTIMEZONE"]


def test_a_feed_has_the_zones_icalendar_would_add_for_its_years_ahead_of_its_events() -> None:
    zones = ["Europe/Paris", "America/New_York", "Europe/Paris", "UTC"]
    ours = finish(feed_in(zones), date(2027, 3, 1), date(2028, 6, 1))
    theirs = feed_in(zones)
    theirs.add_missing_timezones(first_date=date(2027, 1, 1), last_date=date(2029, 12, 31))
    assert parts_of(ours) == parts_of(theirs.to_ical())
    assert len(parts_of(ours)[0]) == 2
    assert ours.rindex(b"END:VTIMEZONE") < ours.index(b"BEGIN:VEVENT")


def test_a_second_file_in_a_zone_gets_the_same_zone_as_the_first() -> None:
    first = icalendar.Calendar.from_ical(booking_ics(BOOKING))
    second = icalendar.Calendar.from_ical(booking_ics(BOOKING | {"id": str(uuid.uuid4())}))
    assert [c.name for c in first.subcomponents] == ["VTIMEZONE", "VEVENT"]
    assert first.subcomponents[0].to_ical() == second.subcomponents[0].to_ical()
    assert not first.get_missing_tzids()


def emailed(business_name: str) -> Message:
    event = {
        "type": "booking.created",
        "timestamp": "2027-01-04T09:00:00+00:00",
        "business": {"name": business_name, "client_emails": ["confirmation"]},
        "data": BOOKING,
    }
    message_id = uuid.UUID("5b0c3c8e-2f0e-4b7a-8d55-1f6f0b8b7a11")  # as on a retry
    sent = flatten_message(mail.compose("confirmation", event, message_id, "Salon <s@x.test>"))
    return email.message_from_bytes(sent)


def test_a_business_name_holding_a_boundary_line_leaves_the_email_whole() -> None:
    boundaries = [part.get_boundary() for part in emailed("Salon").walk()]
    boundary_line = f"--{boundaries[1]}"  # the alternative texts'
    # The text ends with the business's name on a line of its own.
    received = emailed(f"Salon\n{boundary_line}\nContent-Type: text/plain")
    assert [part.get_content_type() for part in received.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    text = next(p for p in received.walk() if p.get_content_type() == "text/plain")
    payload = text.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert f"\n{boundary_line}\n" in payload.decode()


def test_a_file_is_byte_for_byte_what_icalendar_writes_with_lines_of_every_length() -> None:
    calendar = new_calendar("Ünïcode salon")
    # Around the 75-octet fold, in ASCII, in two- and three-octet characters, and with
    # a backslash escape where a fold would fall.
    texts = ["x" * n for n in (*range(1, 80), 150, 400)] + [
        "é" * 40,
        "€" * 30,
        "a" * 60 + "é" * 5,
        "a" * 62 + ",b;c\\d",
        "line one\nline two" * 5,
    ]
    for number, text in enumerate(texts):
        event = icalendar.Event()
        event.add("uid", f"{number}@calendence.test")
        event.add("summary", text)
        event.add("dtstart", datetime(2027, 3, 1, 10, tzinfo=ZoneInfo("Europe/Paris")))
        calendar.add_component(event)
    assert serialise(calendar) == calendar.to_ical()
    assert b"\r\n " in serialise(calendar)  # the long ones folded
