"""Parsing helpers that turn schema violations into per-field `InvalidInput` errors."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from calendence.errors import InvalidInput

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


class Schema(BaseModel):
    """Base for request bodies: unknown fields and loose types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

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


def parse_obj(model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput("the request has invalid fields", fields=field_errors(error)) from None
