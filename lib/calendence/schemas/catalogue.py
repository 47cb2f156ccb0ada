"""Catalogue resources: locations, services, staff and custom fields."""

from __future__ import annotations

import re
import zoneinfo
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import pycountry
from pydantic import AfterValidator, EmailStr, Field, model_validator

from calendence.schemas.common import Schema

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")


def minutes_of(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise ValueError("must be a time of day as HH:MM (24:00 allowed as a closing time)")
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as Europe/London") from None
    return value


def _currency(value: str) -> str:
    if len(value) != 3 or pycountry.currencies.get(alpha_3=value.upper()) is None:
        raise ValueError("must be an ISO 4217 currency code such as EUR")
    return value.upper()


Clock = Annotated[str, AfterValidator(_clock)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Currency = Annotated[str, AfterValidator(_currency)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class TimeRange(Schema):
    opens: Clock
    closes: Clock


class WeeklyHours(Schema):
    """Opening ranges per weekday, in the location's local time."""

    monday: list[TimeRange] = []
    tuesday: list[TimeRange] = []
    wednesday: list[TimeRange] = []
    thursday: list[TimeRange] = []
    friday: list[TimeRange] = []
    saturday: list[TimeRange] = []
    sunday: list[TimeRange] = []

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> WeeklyHours:
        for day in WEEKDAYS:
            ranges = sorted(getattr(self, day), key=lambda r: minutes_of(r.opens))
            for index, item in enumerate(ranges):
                if minutes_of(item.opens) >= minutes_of(item.closes):
                    raise ValueError(f"{day}: {item.opens}-{item.closes} closes before it opens")
                if index and minutes_of(item.opens) < minutes_of(ranges[index - 1].closes):
                    raise ValueError(f"{day}: ranges overlap at {item.opens}")
        return self

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
    duration_minutes: Annotated[int, Field(gt=0, le=24 * 60)]
    price_amount: Annotated[int, Field(ge=0, description="In the currency's minor unit")]
    currency: Currency
    deposit_amount: Annotated[int, Field(ge=0)] = 0
    buffer_minutes: Annotated[int, Field(ge=0, le=24 * 60)] = 0
    active: bool = True
    location_ids: Annotated[list[UUID], Field(min_length=1)]

    @model_validator(mode="after")
    def _deposit_within_price(self) -> ServiceFields:
        if self.deposit_amount > self.price_amount:
            raise ValueError("deposit_amount cannot exceed price_amount")
        return self


class StaffFields(Schema):
    name: Name
    email: EmailStr | None = None
    service_ids: list[UUID] = []
    location_ids: Annotated[list[UUID], Field(min_length=1)]
    # None: works whenever the location is open.
    weekly_hours: WeeklyHours | None = None


class CustomFieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    SELECT = "select"


class CustomFieldFields(Schema):
    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    label: Name
    type: CustomFieldType
    required: bool = False
    options: list[Annotated[str, Field(min_length=1, max_length=200)]] = []

    @model_validator(mode="after")
    def _options_match_type(self) -> CustomFieldFields:
        if self.type is CustomFieldType.SELECT and not self.options:
            raise ValueError("a select field needs at least one option")
        if self.type is not CustomFieldType.SELECT and self.options:
            raise ValueError("only select fields take options")
        if len(set(self.options)) != len(self.options):
            raise ValueError("options must be distinct")
        return self


class BusinessFields(Schema):
    name: Name
    success_url: Annotated[str, Field(max_length=2000)] | None = None
    cancel_url: Annotated[str, Field(max_length=2000)] | None = None


CATALOGUE_FIELDS: dict[str, type[Schema]] = {
    "locations": LocationFields,
    "services": ServiceFields,
    "staff": StaffFields,
    "custom_fields": CustomFieldFields,
}


def merge_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Top-level merge: a PATCH replaces the fields it names and keeps the rest."""
    return {**current, **patch}
