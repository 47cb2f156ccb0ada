"""Parsing helpers that turn schema violations into per-field `InvalidInput` errors."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from calendence.errors import InvalidInput

Model = TypeVar("Model", bound=BaseModel)


class Schema(BaseModel):
    """Base for request bodies: unknown fields and loose types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def field_errors(error: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "body"
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
