"""Reminders and client emails: what a business sets, and the messages the API lists."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field

from calendence.schemas.common import WHOLE_NUMBER, Answer, Schema, page_of

MAX_REMINDERS = 5
# A reminder goes out at most 30 days before its booking.
MAX_REMINDER_MINUTES = 30 * 24 * 60

ClientEmail = Literal["confirmation", "cancellation", "reschedule", "reminder"]
CLIENT_EMAILS: list[ClientEmail] = ["confirmation", "cancellation", "reschedule", "reminder"]


class Reminder(Schema):
    before_minutes: Annotated[int, Field(ge=1, le=MAX_REMINDER_MINUTES), WHOLE_NUMBER] = Field(
        description="How long before the booking starts the reminder goes out, in minutes"
    )


def _distinct_reminders(values: list[Reminder]) -> list[Reminder]:
    if len({r.before_minutes for r in values}) != len(values):
        raise ValueError("must not name the same before_minutes twice")
    return values


def _distinct_emails(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("must not name the same email twice")
    return values


# Repeats are refused, and the document says so (`uniqueItems`).
_UNIQUE = Field(json_schema_extra={"uniqueItems": True})
Reminders = Annotated[
    list[Reminder],
    Field(max_length=MAX_REMINDERS),
    _UNIQUE,
    AfterValidator(_distinct_reminders),
]
ClientEmails = Annotated[list[ClientEmail], _UNIQUE, AfterValidator(_distinct_emails)]

REMINDERS_DESCRIPTION = (
    f"Up to {MAX_REMINDERS} reminders: each sends a `booking.reminder` event (and, when "
    "`client_emails` has `reminder`, an email to the client) that long before every "
    "live booking starts. Times already past when a booking is made or moved are skipped."
)
CLIENT_EMAILS_DESCRIPTION = (
    "Which emails the business's clients get: `confirmation` (a booking is confirmed), "
    "`cancellation`, `reschedule` and `reminder`. Empty: none."
)


class MessageAttempt(Answer):
    attempt: int
    attempted_at: datetime
    error: str | None = Field(description="Why the attempt failed; null when it succeeded")


class ClientMessage(Answer):
    """An email to the booking's client and what became of it."""

    object: Literal["message"]
    id: UUID
    booking_id: UUID
    event_id: UUID = Field(description="The booking event the message was sent for")
    kind: ClientEmail
    channel: Literal["email"]
    to: str
    subject: str
    status: Literal["pending", "sent", "failed"] = Field(
        description="`pending` until the mail server takes it (retried with backoff), "
        "`sent` once it did, `failed` when it refused it for good (a bounce) or every "
        "retry failed"
    )
    attempts: list[MessageAttempt]
    created_at: datetime
    sent_at: datetime | None


ClientMessageList = page_of(ClientMessage, "ClientMessageList")
