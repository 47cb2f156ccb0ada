"""Catalogue resources: locations, services, staff and custom fields."""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from calendence.schemas.common import (
    ANSWER_CONFIG,
    WHOLE_NUMBER,
    Email,
    FieldError,
    Schema,
    page_of,
)
from calendence.schemas.messaging import (
    CLIENT_EMAILS,
    CLIENT_EMAILS_DESCRIPTION,
    REMINDERS_DESCRIPTION,
    ClientEmails,
    Reminders,
)
from calendence.schemas.scheduling import BookingPolicy, BookingPolicyOverride
from calendence.schemas.urls import HTTP_URL_PATTERN, ORIGIN_PATTERN

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Digits are ASCII only: Python's \d would also take other scripts' digits.
CLOCK_PATTERN = r"^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
_CLOCK = re.compile(CLOCK_PATTERN)
# Amounts travel as JSON numbers; above 2**53 - 1 a JavaScript client silently loses
# precision (and PostgreSQL's bigint would overflow not much further up).
MAX_AMOUNT = 2**53 - 1
# Names in the zone database that are not places: the host's own setting and a placeholder.
_NOT_IANA_ZONES = frozenset({"localtime", "Factory"})


def minutes_of(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise ValueError("must be a time of day as HH:MM (24:00 allowed as a closing time)")
    return value


@functools.cache
def _iana_zones() -> frozenset[str]:
    # ZoneInfo() alone also opens files such as "posix/Europe/London" or "localtime"
    # that happen to lie in the zone folders; only the database's own names are zones.
    return frozenset(zoneinfo.available_timezones()) - _NOT_IANA_ZONES


def _timezone(value: str) -> str:
    if value not in _iana_zones():
        raise ValueError("must be an IANA time zone such as Europe/London")
    return value


@functools.cache
def _currency_codes() -> tuple[str, ...]:
    """ISO 4217 codes, in upper case as answers show them and in lower case as Stripe
    writes them; both are taken."""
    upper = sorted(currency.alpha_3 for currency in pycountry.currencies)
    return (*upper, *(code.lower() for code in upper))


def _currency(value: str) -> str:
    if value not in _currency_codes():
        raise ValueError("must be an ISO 4217 currency code such as EUR (or eur)")
    return value.upper()


def _distinct(values: list[UUID]) -> list[UUID]:
    if len(set(values)) != len(values):
        raise ValueError("must not name the same id twice")
    return values


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http or https URL")
    return value


_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_ALLOWED_ORIGINS = 50


def _origin(value: str) -> str:
    """A browser origin, written as browsers send it in the Origin header."""
    problem = "must be an origin: http(s)://host[:port], with no path, such as https://shop.example"
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(problem) from None
    if (
        not value.isascii()
        or parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path
        or parts.query
        or parts.fragment
        or value.endswith(("?", "#"))
    ):
        raise ValueError(problem)
    # Browsers send the scheme and host in lower case and leave out a default port.
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    shown_port = "" if port is None or port == _DEFAULT_PORTS[parts.scheme] else f":{port}"
    return f"{parts.scheme}://{host}{shown_port}"


def _distinct_origins(values: list[str]) -> list[str]:
    """The list as sent may not repeat an entry (the document's `uniqueItems`); entries
    that differ only in how they are written (`https://Shop.Example:443` beside
    `https://shop.example`) are one origin, kept once."""
    return list(dict.fromkeys(values))


def _no_repeated_text(values: Any) -> Any:
    """Before the entries are read: the same string twice is refused."""
    if isinstance(values, list) and all(isinstance(item, str) for item in values):
        if len(set(values)) != len(values):
            raise ValueError("must not name the same origin twice")
    return values


def _one_of(names: Iterable[str], description: str, example: str) -> WithJsonSchema:
    """The documented schema of a string that must be one of `names`."""
    return WithJsonSchema(
        {"type": "string", "enum": list(names), "description": description, "examples": [example]}
    )


Clock = Annotated[str, Field(pattern=CLOCK_PATTERN, examples=["09:00"]), AfterValidator(_clock)]
TimeZone = Annotated[
    str,
    AfterValidator(_timezone),
    _one_of(sorted(_iana_zones()), "An IANA time zone name", "Europe/London"),
]
Currency = Annotated[
    str,
    AfterValidator(_currency),
    _one_of(
        _currency_codes(),
        "An ISO 4217 currency code, in upper or lower case; answers show it in upper case",
        "EUR",
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Amount = Annotated[
    int, Field(ge=0, le=MAX_AMOUNT, description="In the currency's minor unit"), WHOLE_NUMBER
]
Ids = Annotated[
    list[UUID], AfterValidator(_distinct), Field(json_schema_extra={"uniqueItems": True})
]
HttpUrl = Annotated[
    str,
    Field(
        max_length=2000,
        pattern=HTTP_URL_PATTERN,
        examples=["https://shop.example/booked"],
    ),
    AfterValidator(_http_url),
]
Origin = Annotated[
    str,
    Field(max_length=300, pattern=ORIGIN_PATTERN, examples=["https://shop.example"]),
    AfterValidator(_origin),
]


class TimeRange(Schema):
    opens: Clock
    closes: Clock


def _ordered(ranges: list[TimeRange]) -> list[TimeRange]:
    """A day's ranges each open before they close and never overlap."""
    by_start = sorted(ranges, key=lambda r: minutes_of(r.opens))
    for index, item in enumerate(by_start):
        if minutes_of(item.opens) >= minutes_of(item.closes):
            raise ValueError(f"{item.opens}-{item.closes} closes before it opens")
        if index and minutes_of(item.opens) < minutes_of(by_start[index - 1].closes):
            raise ValueError(f"ranges overlap at {item.opens}")
    return ranges


# Checked per day, so that every bad day is named (opening_hours.monday, ...).
DayRanges = Annotated[list[TimeRange], AfterValidator(_ordered)]


class WeeklyHours(Schema):
    """Opening ranges per weekday, in the location's local time; each day's ranges open
    before they close (24:00 is midnight at the end of the day) and do not overlap."""

    monday: DayRanges = []
    tuesday: DayRanges = []
    wednesday: DayRanges = []
    thursday: DayRanges = []
    friday: DayRanges = []
    saturday: DayRanges = []
    sunday: DayRanges = []

    def ranges(self, weekday: int) -> list[tuple[int, int]]:
        """(open, close) minutes after midnight for weekday 0 = Monday."""
        return sorted(
            (minutes_of(r.opens), minutes_of(r.closes)) for r in getattr(self, WEEKDAYS[weekday])
        )


class LocationFields(Schema):
    name: Name
    address: Annotated[str, Field(max_length=500)] | None = None
    timezone: TimeZone
    opening_hours: WeeklyHours = WeeklyHours()


class ServiceFields(Schema):
    name: Name
    duration_minutes: Annotated[int, Field(gt=0, le=24 * 60), WHOLE_NUMBER]
    price_amount: Amount
    currency: Currency
    deposit_amount: Annotated[Amount, Field(description="At most price_amount")] = 0
    buffer_minutes: Annotated[int, Field(ge=0, le=24 * 60), WHOLE_NUMBER] = 0
    active: bool = True
    location_ids: Annotated[Ids, Field(min_length=1)]
    booking_policy: BookingPolicyOverride = Field(
        default=BookingPolicyOverride(),
        description="This service's own booking rules; null fields follow the business's",
    )

    @model_validator(mode="after")
    def _deposit_within_price(self) -> ServiceFields:
        if self.deposit_amount > self.price_amount:
            raise FieldError("deposit_amount", "cannot exceed price_amount")
        return self


class StaffFields(Schema):
    name: Name
    email: Email | None = None
    service_ids: Ids = []
    location_ids: Annotated[Ids, Field(min_length=1)]
    # None: works whenever the location is open.
    weekly_hours: WeeklyHours | None = None


class CustomFieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    SELECT = "select"


class CustomFieldFields(Schema):
    # A select field needs options, other types take none: said in JSON Schema too.
    model_config = Schema.model_config | ConfigDict(
        json_schema_extra={
            "if": {"properties": {"type": {"const": "select"}}, "required": ["type"]},
            "then": {"properties": {"options": {"minItems": 1}}, "required": ["options"]},
            "else": {"properties": {"options": {"maxItems": 0}}},
        }
    )

    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    label: Name
    type: CustomFieldType
    required: bool = False
    options: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]],
        Field(
            json_schema_extra={"uniqueItems": True},
            description="The choices of a select field (at least one); other types take none",
        ),
    ] = []

    @model_validator(mode="after")
    def _options_match_type(self) -> CustomFieldFields:
        if self.type is CustomFieldType.SELECT and not self.options:
            raise FieldError("options", "a select field needs at least one option")
        if self.type is not CustomFieldType.SELECT and self.options:
            raise FieldError("options", "only select fields take options")
        if len(set(self.options)) != len(self.options):
            raise FieldError("options", "options must be distinct")
        return self


class BusinessFields(Schema):
    name: Name
    # Where Stripe Checkout sends the client back after paying a deposit, or not.
    success_url: HttpUrl | None = Field(
        default=None, description="Where Stripe Checkout sends the client after paying"
    )
    cancel_url: HttpUrl | None = Field(
        default=None, description="Where Stripe Checkout sends a client who gives up"
    )
    allowed_origins: Annotated[
        list[Origin],
        Field(max_length=MAX_ALLOWED_ORIGINS, json_schema_extra={"uniqueItems": True}),
        BeforeValidator(_no_repeated_text),
        AfterValidator(_distinct_origins),
    ] = Field(
        default=[],
        description="Web origins whose pages may call the API with this business's session "
        "tokens (CORS), e.g. the site that embeds the booking widget",
    )
    booking_policy: BookingPolicy = Field(
        default=BookingPolicy(),
        description="Notice, advance and step rules for holds and availability; a PATCH "
        "changes the fields it names and keeps the others",
    )
    reminders: Reminders = Field(default=[], description=REMINDERS_DESCRIPTION)
    client_emails: ClientEmails = Field(
        default=list(CLIENT_EMAILS), description=CLIENT_EMAILS_DESCRIPTION
    )


# --- answers ---------------------------------------------------------------------------


class Location(LocationFields):
    model_config = ANSWER_CONFIG

    object: Literal["location"]
    id: UUID
    created_at: datetime
    updated_at: datetime


# A deleted location or service leaves the id lists that named it, so a stored list
# may be empty where a request's may not.
StoredIds = Annotated[
    list[UUID], Field(description="Empty once every location (or service) it named is deleted")
]


class Service(ServiceFields):
    model_config = ANSWER_CONFIG

    object: Literal["service"]
    id: UUID
    location_ids: StoredIds
    created_at: datetime
    updated_at: datetime


class StaffMember(StaffFields):
    model_config = ANSWER_CONFIG

    object: Literal["staff_member"]
    id: UUID
    location_ids: StoredIds
    service_ids: StoredIds
    created_at: datetime
    updated_at: datetime


class CustomField(CustomFieldFields):
    model_config = ANSWER_CONFIG

    object: Literal["custom_field"]
    id: UUID
    created_at: datetime
    updated_at: datetime


class Business(BusinessFields):
    model_config = ANSWER_CONFIG

    object: Literal["business"]
    id: UUID
    hub_id: UUID | None
    created_at: datetime
    updated_at: datetime


LocationList = page_of(Location, "LocationList")
ServiceList = page_of(Service, "ServiceList")
StaffList = page_of(StaffMember, "StaffList")
CustomFieldList = page_of(CustomField, "CustomFieldList")
BusinessList = page_of(Business, "BusinessList")

CATALOGUE_FIELDS: dict[str, type[Schema]] = {
    "locations": LocationFields,
    "services": ServiceFields,
    "staff": StaffFields,
    "custom_fields": CustomFieldFields,
}


def merge_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Top-level merge: a PATCH replaces the fields it names and keeps the rest."""
    return {**current, **patch}


# What a catalogue collection answers with, by schema name (as CATALOGUE_FIELDS).
CATALOGUE_ANSWERS: dict[str, tuple[type[Schema], type[BaseModel]]] = {
    "locations": (Location, LocationList),
    "services": (Service, ServiceList),
    "staff": (StaffMember, StaffList),
    "custom_fields": (CustomField, CustomFieldList),
}
