"""Webhook endpoints and deliveries as the public API shows them.

notify-service validates endpoint bodies with the same `EndpointFields` and
`RedeliverRequest` the gateway documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args
from uuid import UUID

from pydantic import AfterValidator, Field, WithJsonSchema

from calendence.schemas.common import Answer, Schema, page_of
from calendence.schemas.urls import HTTP_URL_PATTERN

ALL_EVENTS: Literal["*"] = "*"

# What an endpoint may subscribe to; "*" is every event, present and future.
EventType = Literal[
    "*",
    "booking.created",
    "booking.confirmed",
    "booking.rescheduled",
    "booking.updated",
    "booking.cancelled",
    "booking.completed",
    "booking.no_show",
    "booking.reminder",
]


def _event_list(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("must not name the same event twice")
    if ALL_EVENTS in values and len(values) > 1:
        raise ValueError('"*" (every event) cannot be combined with other events')
    return values


_NAMED_EVENTS = [event for event in get_args(EventType) if event != ALL_EVENTS]
# `_event_list`'s rules in JSON Schema: ["*"] alone, or distinct named events.
_EVENTS_SCHEMA = {
    "anyOf": [
        {"type": "array", "items": {"const": ALL_EVENTS}, "minItems": 1, "maxItems": 1},
        {
            "type": "array",
            "items": {"type": "string", "enum": _NAMED_EVENTS},
            "minItems": 1,
            "uniqueItems": True,
        },
    ],
    "default": [ALL_EVENTS],
    "description": '`["*"]` for every event, present and future, or the event types wanted',
}


class EndpointFields(Schema):
    url: Annotated[
        str,
        Field(
            max_length=2000,
            pattern=HTTP_URL_PATTERN,
            description="An absolute https URL (in development also http); where it points "
            "is checked when saved and on every delivery",
            examples=["https://hooks.example.com/calendence"],
        ),
    ]
    events: Annotated[
        list[EventType],
        Field(min_length=1),
        AfterValidator(_event_list),
        WithJsonSchema(_EVENTS_SCHEMA),
    ] = [ALL_EVENTS]
    description: Annotated[str, Field(max_length=500)] = ""
    enabled: bool = True


class RedeliverRequest(Schema):
    event_id: UUID


class WebhookEndpoint(Answer):
    """Where signed webhooks go (Standard Webhooks: webhook-id, webhook-timestamp,
    webhook-signature). The signing secret is shown only when made."""

    object: Literal["webhook_endpoint"]
    id: UUID
    url: str
    description: str
    events: list[EventType]
    enabled: bool
    status: Literal["enabled", "disabled"]
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class NewWebhookEndpoint(WebhookEndpoint):
    secret: str = Field(description="The signing secret (`whsec_...`), shown this once")


class RotatedWebhookEndpoint(NewWebhookEndpoint):
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret signs too, beside the new one"
    )


class DeliveryAttempt(Answer):
    attempt: int
    attempted_at: datetime
    status_code: int | None = Field(description="The endpoint's HTTP status; null if none came")
    latency_ms: float
    error: str | None


class WebhookDelivery(Answer):
    """One event sent (or being sent) to one endpoint, with every attempt."""

    object: Literal["webhook_delivery"]
    id: UUID
    endpoint_id: UUID
    event_id: UUID
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    redelivery: bool
    attempt_count: int
    next_attempt_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    attempts: list[DeliveryAttempt]


WebhookEndpointList = page_of(WebhookEndpoint, "WebhookEndpointList")
WebhookDeliveryList = page_of(WebhookDelivery, "WebhookDeliveryList")
