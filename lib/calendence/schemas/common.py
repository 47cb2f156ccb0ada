"""Parsing helpers that turn schema violations into per-field `InvalidInput` errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import email_validator
import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    create_model,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from calendence.errors import InvalidInput
from calendence.timefmt import to_iso

Model = TypeVar("Model", bound=BaseModel)


class FieldError(ValueError):
    """A rule checked on the whole model that one field breaks: reported under that field.

    A model validator's errors carry no location, so without this a select field
    missing its options would be blamed on "body" rather than on "options".
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple | set | frozenset):
        return any(_has_nul(item) for item in value)
    return False


# Every request string without a rule of its own refuses NUL (see Schema); the document
# says so with this pattern.
_NO_NUL_PATTERN = "^[^\u0000]*$"
# What makes a string schema's own rule: then NUL is refused by that rule already.
_STRING_RULES = ("pattern", "enum", "const", "format")


def _state_no_nul(schema: Any) -> None:
    """Add the NUL rule to every plain string in a JSON Schema (not inside other models,
    which are `$ref`s and get it from their own class)."""
    if isinstance(schema, list):
        for item in schema:
            _state_no_nul(item)
        return
    if not isinstance(schema, dict) or "$ref" in schema:
        return
    if schema.get("type") == "string" and not any(rule in schema for rule in _STRING_RULES):
        schema["pattern"] = _NO_NUL_PATTERN
    for key in ("properties", "patternProperties", "$defs"):
        for sub in (schema.get(key) or {}).values():
            _state_no_nul(sub)
    for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems"):
        if key in schema:
            _state_no_nul(schema[key])


def _whole_number(value: Any) -> Any:
    """JSON Schema counts 59.0 as an integer, and so does the API (strict mode would not)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Put last on an integer in a request (after its bounds): also takes 59.0.
WHOLE_NUMBER = BeforeValidator(_whole_number)


def _email(value: str) -> str:
    try:
        checked = email_validator.validate_email(
            value, check_deliverability=False, globally_deliverable=False
        )
    except email_validator.EmailNotValidError as error:
        raise ValueError(f"must be an email address: {error}") from None
    return str(checked.normalized)


def _any_case(word: str) -> str:
    return "".join(f"[{letter}{letter.upper()}]" for letter in word)


# Domains that never receive mail (`x@shop.test`), which the address check refuses.
_NO_MAIL_DOMAINS = "[@.](?:{})$".format(
    "|".join(_any_case(name) for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)
)

_BARE_ADDRESS = r'^[^\s<>"\[\]@]+@[^\s<>"\[\]@]+$'

# An email address: JSON Schema's `email` format (RFC 5321 syntax), less the reserved
# domains. Whether mail arrives is not checked.
Email = Annotated[
    str,
    Field(max_length=320),
    AfterValidator(_email),
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "maxLength": 320,
            # A bare address: no display name, quoted part or address literal.
            "pattern": _BARE_ADDRESS,
            "not": {"pattern": _NO_MAIL_DOMAINS},
            "examples": ["jane@example.com"],
        }
    ),
]


class Schema(BaseModel):
    """Base for request bodies: unknown fields and loose types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        _state_no_nul(handler.resolve_ref_schema(json_schema))
        return json_schema

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_characters(cls, value: Any) -> Any:
        # PostgreSQL's text and jsonb cannot hold U+0000: refuse it here as the
        # caller's error instead of failing the write with a 500.
        if _has_nul(value):
            raise ValueError("must not contain the NUL character (U+0000)")
        return value


def field_errors(error: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for item in error.errors():
        loc = item["loc"]
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            loc = (*loc, cause.field)
        field = ".".join(str(part) for part in loc) or "body"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        errors.setdefault(field, message)
    return errors


def parse_json(model: type[Model], raw: bytes | str) -> Model:
    """Validate a JSON document against `model`; InvalidInput lists every bad field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        fields = field_errors(error)
        if any(item["type"] == "json_invalid" for item in error.errors()):
            raise InvalidInput(
                "the body is not valid JSON", fields={"body": "invalid JSON"}
            ) from None
        raise InvalidInput("the request has invalid fields", fields=fields) from None


def patch_document(patch: bytes, model: type[BaseModel]) -> dict[str, Any]:
    """The fields a PATCH body names (no body is `{}`), after refusing anything but a
    JSON object of `model`'s fields. The caller merges them into the stored document and
    validates the whole."""
    try:
        changes = orjson.loads(patch or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidInput("the body is not valid JSON", fields={"body": "invalid JSON"}) from None
    if not isinstance(changes, dict):
        raise InvalidInput("the body must be a JSON object", fields={"body": "not an object"})
    unknown = set(changes) - set(model.model_fields)
    if unknown:
        raise InvalidInput(
            "the request has invalid fields",
            fields={name: "unknown field" for name in sorted(unknown)},
        )
    return changes


def parse_obj(model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput("the request has invalid fields", fields=field_errors(error)) from None


def _drop_omittable(schema: dict[str, Any], model: type[BaseModel]) -> None:
    omittable: frozenset[str] = getattr(model, "__omittable__", frozenset())
    if omittable and "required" in schema:
        schema["required"] = [name for name in schema["required"] if name not in omittable]


class Answer(BaseModel):
    """Base for response documents: what the API sends, field for field.

    These models document answers (the OpenAPI document is built from them) and shape
    the few the gateway builds itself. Every field is always sent, null when empty,
    unless a class names it in `__omittable__`; no undocumented field is ever sent, so
    the document says `additionalProperties: false` and the schemathesis run holds
    every real answer to that.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_serialization_defaults_required=True,
        json_schema_extra=_drop_omittable,
    )
    __omittable__: ClassVar[frozenset[str]] = frozenset()


ANSWER_CONFIG = Answer.model_config

_ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]")


def _iso_text(value: Any) -> Any:
    """Read an ISO 8601 time here: pydantic would also take a number, or a string of
    digits, as a Unix timestamp, and the API promises ISO 8601."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE_TIME.match(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(
        "must be an ISO 8601 date and time with an offset, such as 2026-03-25T14:00:00+00:00"
    )


# The range of moments a request may name, in UTC. Python's calendar ends with
# 9999-12-31; the weeks kept free before that leave room for what is worked out from a
# moment (a slot's end and buffer, up to two days; its local day in any time zone; an
# availability range), so no arithmetic on an accepted moment can leave the calendar.
# The days kept free after 0001-01-01 do the same for offsets up to +23:59.
EARLIEST_MOMENT = datetime(1, 1, 2, tzinfo=UTC)
LATEST_MOMENT = datetime(9999, 12, 1, tzinfo=UTC)


def _within_calendar(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T20:00:00-14:00 is in year 10000 in UTC
        utc = None
    if utc is None or not EARLIEST_MOMENT <= utc < LATEST_MOMENT:
        raise ValueError(
            f"must be from {EARLIEST_MOMENT.isoformat()} up to {LATEST_MOMENT.isoformat()}"
        )
    return value


# A moment in a request: ISO 8601 with an offset (naive times are refused too), inside
# the range above.
Moment = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_within_calendar)]

# A moment in an answer, written as the Bookings page writes it: UTC, "+00:00".
Instant = Annotated[
    datetime,
    PlainSerializer(to_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def page_of(item: type[BaseModel], name: str) -> type[Answer]:
    """The list document every collection answers with, for `item`s."""
    fields: dict[str, Any] = {
        "object": (Literal["list"], ...),
        "data": (list[item], ...),  # type: ignore[valid-type]
        "has_more": (bool, ...),
        "next_cursor": (str | None, Field(description="null on the last page")),
    }
    return create_model(
        name,
        __base__=Answer,
        __doc__=f"One page of {item.__name__} documents; pass `next_cursor` as `?cursor=`.",
        **fields,
    )
