"""A booking's answers, checked against the business's custom fields."""

from __future__ import annotations

from typing import Any

from calendence.errors import InvalidInput
from calendence.schemas.bookings import CustomFieldValue


def check_custom_fields(
    definitions: list[dict[str, Any]], values: list[CustomFieldValue]
) -> list[dict[str, Any]]:
    """The answers, checked against the business's custom fields."""
    by_key = {d["key"]: d for d in definitions}
    errors: dict[str, str] = {}
    given: dict[str, Any] = {}
    for index, answer in enumerate(values):
        field = f"custom_field_values.{index}"
        definition = by_key.get(answer.key)
        if definition is None:
            errors[f"{field}.key"] = "no such custom field"
        elif answer.key in given:
            errors[f"{field}.key"] = "answered twice"
        elif reason := _type_error(definition, answer.value):
            errors[f"{field}.value"] = reason
        given[answer.key] = answer.value
    for definition in definitions:
        if definition["required"] and definition["key"] not in given:
            errors[f"custom_field_values.{definition['key']}"] = "required"
    if errors:
        raise InvalidInput("the custom field values are not valid", fields=errors)
    return [{"key": key, "value": value} for key, value in given.items()]


def _type_error(definition: dict[str, Any], value: object) -> str | None:
    kind = definition["type"]
    if kind == "boolean" and not isinstance(value, bool):
        return "must be true or false"
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "must be a number"
    if kind == "text" and not isinstance(value, str):
        return "must be text"
    if kind == "select" and value not in definition["options"]:
        return f"must be one of {', '.join(definition['options'])}"
    return None
