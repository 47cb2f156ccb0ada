"""Reading the mails the local SMTP server kept, and a business open around the clock
whose reminders fall due within seconds."""

from __future__ import annotations

import asyncio
import email
import email.policy
import math
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

from calendence.devstack.stack import LocalStack

from tests.api import AROUND_THE_CLOCK, Tenant
from tests.booking_helpers import Salon

GRANULE = 5 * 60


def read_mails(folder: Path) -> list[EmailMessage]:
    mails = []
    for path in sorted(folder.glob("*.eml")):
        with path.open("rb") as file:
            parsed = email.message_from_binary_file(file, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        mails.append(parsed)
    return mails


def as_received(message: Message) -> EmailMessage:
    """A composed email as a mailbox reads it: its bytes, parsed."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def mails_of(stack: LocalStack, booking_id: str, kind: str | None = None) -> list[EmailMessage]:
    assert stack.mailbox is not None
    return [
        m
        for m in read_mails(stack.mailbox)
        if m["Calendence-Booking-Id"] == booking_id
        and (kind is None or m["Calendence-Message-Kind"] == kind)
    ]


async def wait_for_mails(
    stack: LocalStack, booking_id: str, kind: str, count: int = 1, timeout: float = 20.0
) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while True:
        found = mails_of(stack, booking_id, kind)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} {kind} mail(s) for {booking_id} not in {timeout}s")
        await asyncio.sleep(0.1)


def parts(mail: EmailMessage) -> dict[str, str]:
    """The plain-text and HTML bodies, by content type."""
    found = {}
    for part in mail.walk():
        if part.get_content_type() in ("text/plain", "text/html") and not part.is_attachment():
            assert isinstance(part, EmailMessage)
            found[part.get_content_type()] = str(part.get_content())
    return found


def attachment(mail: EmailMessage) -> bytes:
    for part in mail.iter_attachments():
        if part.get_filename() == "booking.ics":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload
    raise AssertionError("no booking.ics attached")


async def open_all_day_salon(tenant: Tenant, timezone: str = "Europe/London") -> Salon:
    """A salon open every hour of every day, so a booking can start within minutes."""
    location = await tenant.location(opening_hours=AROUND_THE_CLOCK, timezone=timezone)
    service = await tenant.service([location["id"]])
    deposit = await tenant.service(
        [location["id"]], price_amount=9000, deposit_amount=2000, duration_minutes=60
    )
    return Salon(tenant, location["id"], service["id"], deposit["id"])


def next_start(at_least: timedelta) -> datetime:
    """The first bookable start (a 5-minute boundary) at least `at_least` from now."""
    earliest = time.time() + at_least.total_seconds()
    return datetime.fromtimestamp(math.ceil(earliest / GRANULE) * GRANULE, UTC)


def lead_for(starts_at: datetime, due_in: float) -> int:
    """The reminder offset (in test minutes, which last a second) that makes a reminder
    of a booking at `starts_at` fall due `due_in` seconds from now."""
    return int((starts_at - datetime.now(UTC)).total_seconds() - due_in)


async def set_messaging(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    answer = await tenant.api.patch(
        f"/api/v1/businesses/{tenant.business_id}", tenant.business_key, fields
    )
    assert answer.status == 200, answer.body
    business: dict[str, Any] = answer.body
    return business
