"""Bookings as iCalendar (RFC 5545): one booking's file, and a staff member's feed.

Each booking is one VEVENT whose UID never changes, so a calendar app updates the
appointment in place when it moves or is cancelled (SEQUENCE grows with each change,
STATUS says CANCELLED). Times carry the location's time zone (TZID and its VTIMEZONE).
A staff member's feed is a secret URL, made or replaced by the business; only a hash
of its token is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from calendence.errors import NotFound
from calendence.ics import EVENT_STATUS, booking_uid, finish, new_calendar, serialise
from calendence.timefmt import to_iso, utcnow
from icalendar import Event

from booking_service.manage import RulesOf
from booking_service.manage_links import ManageLinks
from booking_service.manage_repository import ManageRepository

# How far back a staff member's feed reaches.
FEED_PAST = timedelta(days=30)
# The most appointments one feed lists.
FEED_LIMIT = 5000
# How often a subscribed feed should be fetched again (REFRESH-INTERVAL, X-PUBLISHED-TTL).
FEED_REFRESH = timedelta(minutes=15)
_FEED_TOKEN_PREFIX = "cal_feed_"


def sequence_of(row: dict[str, Any]) -> int:
    """The booking's revision for SEQUENCE: its version where bookings keep one,
    otherwise the seconds between its creation and its last change (which grow with
    every change)."""
    if row.get("version") is not None:
        return int(row["version"])
    return max(0, int((row["updated_at"] - row["created_at"]).total_seconds()))


def booking_event(row: dict[str, Any], *, for_staff: bool) -> Event:
    zone = ZoneInfo(row["timezone"])
    event = Event()
    event.add("uid", booking_uid(row["id"]))
    event.add("sequence", sequence_of(row))
    event.add("dtstamp", row["updated_at"])
    event.add("created", row["created_at"])
    event.add("last-modified", row["updated_at"])
    event.add("dtstart", row["starts_at"].astimezone(zone))
    event.add("dtend", row["ends_at"].astimezone(zone))
    event.add("status", EVENT_STATUS[row["status"]])
    where = ", ".join(p for p in (row["location_name"], row["location_address"]) if p)
    event.add("location", where)
    client = f"{row['client_first_name']} {row['client_last_name']}"
    if for_staff:
        event.add("summary", f"{row['service_name']}: {client}")
        contact = [row["client_email"], row["client_phone"] or ""]
        event.add("description", "\n".join(line for line in contact if line))
    else:
        with_whom = f" with {row['staff_name']}" if row["staff_name"] else ""
        event.add("summary", f"{row['service_name']}{with_whom}")
        if row.get("manage_url"):
            event.add("url", row["manage_url"])
            event.add("description", f"View, move or cancel: {row['manage_url']}")
    return event


def calendar_file(rows: list[dict[str, Any]], *, name: str, for_staff: bool) -> bytes:
    calendar = new_calendar(name)
    if for_staff:
        # A subscribed feed: how often calendar apps should fetch it again.
        calendar.add("refresh-interval", FEED_REFRESH, parameters={"VALUE": "DURATION"})
        calendar.add("x-published-ttl", f"PT{FEED_REFRESH.seconds // 60}M")
    for row in rows:
        calendar.add_component(booking_event(row, for_staff=for_staff))
    if not rows:
        return serialise(calendar)
    first = min(row["starts_at"] for row in rows).date()
    last = max(row["ends_at"] for row in rows).date()
    return finish(calendar, first, last)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class Calendars:
    repository: ManageRepository
    links: ManageLinks
    rules_of: RulesOf
    base_url: str
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")

    async def booking_file(self, business_id: UUID, booking_id: UUID) -> bytes:
        row = await self.repository.booking(booking_id)
        if row is None or row["business_id"] != business_id:
            raise NotFound("no such booking")
        return self.client_file(row)

    def client_file(self, row: dict[str, Any]) -> bytes:
        row = row | {"manage_url": self.links.url_for(row)}
        return calendar_file([row], name=row["service_name"], for_staff=False)

    async def issue_feed(self, business_id: UUID, staff_id: UUID) -> dict[str, Any]:
        token = _FEED_TOKEN_PREFIX + secrets.token_urlsafe(32)
        created_at = await self.repository.save_feed(business_id, staff_id, _hash(token))
        if created_at is None:
            raise NotFound("no such staff")
        return {
            "object": "calendar_feed",
            "staff_id": str(staff_id),
            "url": f"{self.base_url}/calendar/{token}.ics",
            "created_at": to_iso(created_at),
        }

    async def feed(self, token: str) -> bytes:
        owner = await self.repository.feed_owner(_hash(token))
        if owner is None:
            raise NotFound("no such calendar feed")
        rules = await self.rules_of(owner.business_id)
        now = self.clock()
        rows = await self.repository.staff_bookings(
            owner.business_id,
            owner.staff_id,
            now - FEED_PAST,
            now + timedelta(days=rules.max_advance_days),
            FEED_LIMIT,
        )
        return calendar_file(rows, name=f"{owner.staff_name}: appointments", for_staff=True)
