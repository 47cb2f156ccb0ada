"""Client emails: which booking events make one, and the email itself (plain text and
HTML from the template files, times in the location's time zone, the booking as an
.ics attachment)."""

from __future__ import annotations

import io
from datetime import datetime
from email.charset import QP, Charset
from email.encoders import encode_base64
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.utils import format_datetime, formataddr
from typing import Any, cast
from uuid import UUID
from zoneinfo import ZoneInfo

import jinja2
from calendence.ics import booking_ics
from calendence.schemas.messaging import ClientEmail

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("notify_service", "templates"),
    # HTML templates escape every value; the plain-text ones must not.
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    # The templates ship with the service and never change while it runs; checking
    # their files' times on every email cost eight system calls.
    auto_reload=False,
)
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
_SUBJECTS: dict[ClientEmail, str] = {
    "confirmation": "Booking confirmed: {service} on {day}",
    "cancellation": "Booking cancelled: {service} on {day}",
    "reschedule": "Booking moved: {service}, now on {day}",
    "reminder": "Reminder: {service} on {day}",
}


def email_kind(event: dict[str, Any]) -> ClientEmail | None:
    """The client email an event calls for, if the business wants that kind."""
    data = event["data"]
    kind: ClientEmail | None = None
    if event["type"] == "booking.created" and data.get("status") == "confirmed":
        kind = "confirmation"  # a deposit booking is confirmed later, when paid
    elif event["type"] == "booking.confirmed":
        kind = "confirmation"
    elif event["type"] == "booking.cancelled":
        kind = "cancellation"
    elif event["type"] == "booking.rescheduled":
        kind = "reschedule"
    elif event["type"] == "booking.reminder":
        kind = "reminder"
    wanted = (event.get("business") or {}).get("client_emails") or []
    client = data.get("client") or {}
    if kind is None or kind not in wanted or not client.get("email"):
        return None
    return kind


def _local(moment: str, zone: ZoneInfo) -> datetime:
    return datetime.fromisoformat(moment).astimezone(zone)


def _duration(minutes: int) -> str:
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    return " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)


def subject_of(kind: ClientEmail, event: dict[str, Any]) -> str:
    booking = event["data"]
    starts = _local(booking["starts_at"], ZoneInfo(booking["location"]["timezone"]))
    day = f"{starts:%A} {starts.day} {starts:%B %Y, %H:%M}"
    return _SUBJECTS[kind].format(service=booking["service"]["name"], day=day)


def compose(
    kind: ClientEmail, event: dict[str, Any], message_id: UUID, sender: str
) -> MIMEMultipart:
    booking = event["data"]
    business_name = str((event.get("business") or {}).get("name") or "")
    zone = ZoneInfo(booking["location"]["timezone"])
    starts = _local(booking["starts_at"], zone)
    ends = _local(booking["ends_at"], zone)
    subject = subject_of(kind, event)
    client = booking["client"]
    context = {
        "subject": subject,
        "business_name": business_name,
        "client_name": client["first_name"],
        "service_name": booking["service"]["name"],
        "location_name": booking["location"]["name"],
        "location_address": booking["location"].get("address"),
        "staff_name": (booking.get("staff") or {}).get("name"),
        "starts": f"{starts:%A} {starts.day} {starts:%B %Y, %H:%M}",
        "ends_time": f"{ends:%H:%M}",
        "timezone": booking["location"]["timezone"],
        "manage_url": booking.get("manage_url"),
        "starts_in": _duration(int((booking.get("reminder") or {}).get("before_minutes", 0))),
    }
    # Built from email.mime's classes: EmailMessage's header registry parses every
    # header it sets, which cost most of an email's CPU.
    message = MIMEMultipart("mixed", boundary=_boundary(message_id, "mixed"))
    message["Subject"] = _header(subject)
    message["From"] = sender
    message["To"] = formataddr((f"{client['first_name']} {client['last_name']}", client["email"]))
    message["Date"] = format_datetime(datetime.fromisoformat(event["timestamp"]))
    # The same id on every retry: a mailbox that got it once can tell a repeat.
    message["Message-ID"] = f"<{message_id}@calendence>"
    message["Calendence-Booking-Id"] = booking["id"]
    message["Calendence-Message-Kind"] = kind
    bodies = MIMEMultipart("alternative", boundary=_boundary(message_id, "alternative"))
    bodies.attach(_text(_TEMPLATES.get_template(f"{kind}.txt").render(context), "plain"))
    bodies.attach(_text(_TEMPLATES.get_template(f"{kind}.html").render(context), "html"))
    message.attach(bodies)
    ics = MIMEBase("text", "calendar", method="PUBLISH")
    ics.set_payload(booking_ics(booking, business_name))
    encode_base64(ics)
    ics.add_header("Content-Disposition", "attachment", filename="booking.ics")
    message.attach(ics)
    return message


def _boundary(message_id: UUID, part: str) -> str:
    """A multipart's boundary. No body line can start with it: the texts are
    quoted-printable, where a literal "=" is written "=3D", and the calendar is base64.
    Left unset, the generator makes a random one and, to check it against the text,
    compiles a new regular expression for every multipart of every email."""
    return f"=_{part}_{message_id.hex}"


def _header(value: str) -> str:
    """A header value, RFC 2047-encoded when it is not plain ASCII."""
    if value.isascii():
        return value
    # A compat32 message takes a Header and folds it when written (typeshed says str).
    return cast(str, Header(value, "utf-8"))


def _text(body: str, subtype: str) -> MIMENonMultipart:
    """A UTF-8 body, quoted-printable (readable where it is ASCII)."""
    part = MIMENonMultipart("text", subtype)
    part.set_payload(body, _UTF8_QP)
    return part


class _ShortHeadersAsTheyAre(Compat32):
    """compat32, the policy aiosmtplib flattens our messages with, but a header whose
    value is short printable ASCII is written as it is: what compat32's folding makes
    of such a value (tests/unit/test_mail_flattening.py: byte for byte), without the
    `Header` object compat32 builds to fold every header, half of flattening an email."""

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        if (
            type(value) is str
            and value.isascii()
            and value.isprintable()
            and len(name) + 2 + len(value) <= (self.max_line_length or 78)
        ):
            return f"{name}: {value}{self.linesep}"
        folded: str = super()._fold(name, value, sanitize)  # type: ignore[misc]
        return folded


_FLATTENING = _ShortHeadersAsTheyAre()


def flatten(message: Message) -> bytes:
    """The message as the bytes an SMTP client sends (its own line ends: aiosmtplib
    turns them into CRLF), the same as aiosmtplib's `flatten_message` writes."""
    with io.BytesIO() as out:
        BytesGenerator(out, policy=_FLATTENING).flatten(message)
        return out.getvalue()
