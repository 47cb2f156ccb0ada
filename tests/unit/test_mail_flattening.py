"""A client email leaves notify-service as the bytes aiosmtplib's own flattening writes:
`mail.flatten` writes short ASCII headers as they are instead of folding each, and
must give the same bytes for every email and every header."""

from __future__ import annotations

import uuid
from email.policy import compat32
from typing import Any

import pytest
from aiosmtplib.email import flatten_message
from hypothesis import given, settings
from hypothesis import strategies as st
from notify_service import mail

SENDER = "Calendence <no-reply@calendence.test>"
KINDS = ("confirmation", "cancellation", "reschedule", "reminder")
EVENT_TYPES = {
    "confirmation": "booking.created",
    "cancellation": "booking.cancelled",
    "reschedule": "booking.rescheduled",
    "reminder": "booking.reminder",
}


def event(kind: str, zone: str, first_name: str, service: str) -> dict[str, Any]:
    return {
        "type": EVENT_TYPES[kind],
        "timestamp": "2027-01-04T09:00:00+00:00",
        "business": {"name": "Salon Élise", "client_emails": list(KINDS)},
        "data": {
            "id": str(uuid.uuid4()),
            "status": "cancelled" if kind == "cancellation" else "confirmed",
            "version": 2,
            "updated_at": "2027-01-04T09:00:00+00:00",
            "starts_at": "2027-03-28T09:00:00+00:00",
            "ends_at": "2027-03-28T09:30:00+00:00",
            "service": {"name": service},
            "location": {"name": "Main", "address": "1 Rue Neuve", "timezone": zone},
            "staff": {"name": "Ann"},
            "client": {"first_name": first_name, "last_name": "Doe", "email": "jane@example.com"},
            "manage_url": "https://calendence.test/manage/abc",
            "reminder": {"before_minutes": 1440},
        },
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns"])
@pytest.mark.parametrize(
    ("first_name", "service"),
    [
        ("Jane", "Haircut"),
        ("Zoë", "Coupe, couleur et brushing pour cheveux longs avec soin profond"),
    ],
    ids=["ascii", "accents and a subject to fold"],
)
def test_an_email_flattens_to_the_bytes_aiosmtplib_writes(
    kind: str, zone: str, first_name: str, service: str
) -> None:
    message = mail.compose(kind, event(kind, zone, first_name, service), uuid.uuid4(), SENDER)  # type: ignore[arg-type]
    assert mail.flatten(message) == flatten_message(message)


def folded(policy: Any, name: str, value: str) -> bytes | type[Exception]:
    try:
        return bytes(policy.fold_binary(name, value))
    except Exception as error:  # the same refusal counts as the same outcome
        return type(error)


@settings(max_examples=2000, deadline=None)
@given(
    name=st.sampled_from(["Subject", "To", "Message-ID", "Calendence-Message-Kind"]),
    value=st.text(max_size=90),
)
def test_any_header_is_written_as_compat32_folds_it(name: str, value: str) -> None:
    assert folded(mail._FLATTENING, name, value) == folded(compat32, name, value)


@settings(max_examples=2000, deadline=None)
@given(
    name=st.sampled_from(["Subject", "To", "Content-Type"]),
    value=st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=90),
)
def test_any_ascii_header_is_written_as_compat32_folds_it(name: str, value: str) -> None:
    assert folded(mail._FLATTENING, name, value) == folded(compat32, name, value)
