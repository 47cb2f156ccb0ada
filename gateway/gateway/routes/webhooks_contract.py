"""The route table's entries for the webhook endpoint routes of `gateway.routes.webhooks`.

Those handlers are defined (and check their own key kinds) there; the gateway puts them
behind these entries' checks too (`gateway.contract.adopt`), and the OpenAPI document
describes them from here. notify-service validates the bodies, so they are documented
here but not checked by the gateway.
"""

from __future__ import annotations

from calendence.schemas.webhooks import (
    EndpointFields,
    NewWebhookEndpoint,
    RedeliverRequest,
    RotatedWebhookEndpoint,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointList,
)

from gateway.auth import MANAGING_KINDS
from gateway.contract import Body, Operation, Reply
from gateway.routes.webhooks import BASE

TAG = "Webhook endpoints"
ONE = BASE + "/{endpoint_id}"
_MISSING = {404: "No such webhook endpoint in this business"}

WEBHOOK_OPERATIONS = (
    Operation(
        "POST",
        BASE,
        summary="Create a webhook endpoint",
        tag=TAG,
        keys=MANAGING_KINDS,
        description="Subscribes an https URL to booking events (`*` for every event). The "
        "answer carries the signing secret, shown this once. Private, loopback and "
        "link-local targets are refused.",
        body=Body(EndpointFields, checked=False),
        replies=(Reply(201, NewWebhookEndpoint, "The endpoint and its signing secret"),),
        idempotent=True,
    ),
    Operation(
        "GET",
        BASE,
        summary="List webhook endpoints",
        tag=TAG,
        keys=MANAGING_KINDS,
        paged=True,
        replies=(Reply(200, WebhookEndpointList, "One page of endpoints"),),
    ),
    Operation(
        "GET",
        ONE,
        summary="Show a webhook endpoint",
        tag=TAG,
        keys=MANAGING_KINDS,
        replies=(Reply(200, WebhookEndpoint, "The endpoint (without its secret)"),),
        errors=_MISSING,
    ),
    Operation(
        "PATCH",
        ONE,
        summary="Update a webhook endpoint",
        tag=TAG,
        keys=MANAGING_KINDS,
        description="Send only the fields to change (url, events, description, enabled).",
        body=Body(EndpointFields, required=False, checked=False, partial=True),
        replies=(Reply(200, WebhookEndpoint, "The updated endpoint"),),
        conflicts=False,
        errors=_MISSING,
    ),
    Operation(
        "DELETE",
        ONE,
        summary="Delete a webhook endpoint",
        tag=TAG,
        keys=MANAGING_KINDS,
        replies=(Reply(204, None, "Deleted"),),
        conflicts=False,
        errors=_MISSING,
    ),
    Operation(
        "POST",
        ONE + "/rotate-secret",
        summary="Rotate the signing secret",
        tag=TAG,
        keys=MANAGING_KINDS,
        description="A new secret, shown this once; the previous one keeps signing beside "
        "it for 24 hours.",
        replies=(Reply(200, RotatedWebhookEndpoint, "The endpoint and its new secret"),),
        idempotent=True,
        errors=_MISSING,
    ),
    Operation(
        "GET",
        ONE + "/deliveries",
        summary="List recent deliveries",
        tag=TAG,
        keys=MANAGING_KINDS,
        paged=True,
        replies=(Reply(200, WebhookDeliveryList, "One page of deliveries, with attempts"),),
        errors=_MISSING,
    ),
    Operation(
        "POST",
        ONE + "/redeliver",
        summary="Redeliver an event",
        tag=TAG,
        keys=MANAGING_KINDS,
        body=Body(RedeliverRequest, checked=False),
        replies=(Reply(202, WebhookDelivery, "A new delivery of the event, queued"),),
        idempotent=True,
        errors={
            404: "No such endpoint, or no such event of this business",
            409: "The endpoint is disabled; enable it first",
        },
    ),
)
