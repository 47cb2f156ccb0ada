"""Webhook endpoints for business and hub keys: create, list, show, update, delete,
rotate the secret, list recent deliveries, redeliver an event (served by notify-service,
which validates the bodies: the route table documents them but does not check them)."""

from __future__ import annotations

from aiohttp import web
from calendence.notify.v1 import notify_pb2
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

from gateway.appkeys import DOWNSTREAM
from gateway.auth import principal_of
from gateway.contract import Body, Reply
from gateway.http_io import read_body
from gateway.relay import item_relay, relay_document, relay_no_content, relay_page
from gateway.resource import Resource


def endpoint_ref(request: web.Request) -> notify_pb2.EndpointRef:
    return notify_pb2.EndpointRef(
        business_id=principal_of(request).business_id,
        endpoint_id=request.match_info["endpoint_id"],
    )


async def create_endpoint(request: web.Request) -> web.Response:
    message = notify_pb2.CreateEndpointRequest(
        business_id=principal_of(request).business_id, body_json=await read_body(request)
    )
    return await relay_document(
        request, request.app[DOWNSTREAM].notify.CreateEndpoint, message, status=201
    )


async def list_endpoints(request: web.Request) -> web.Response:
    query = notify_pb2.ListEndpointsRequest(business_id=principal_of(request).business_id)
    return await relay_page(request, request.app[DOWNSTREAM].notify.ListEndpoints, query)


show_endpoint = item_relay(lambda services: services.notify.GetEndpoint, endpoint_ref)


async def update_endpoint(request: web.Request) -> web.Response:
    ref = endpoint_ref(request)
    message = notify_pb2.UpdateEndpointRequest(
        business_id=ref.business_id,
        endpoint_id=ref.endpoint_id,
        patch_json=await request.read() or b"{}",
    )
    return await relay_document(request, request.app[DOWNSTREAM].notify.UpdateEndpoint, message)


async def delete_endpoint(request: web.Request) -> web.Response:
    return await relay_no_content(
        request, request.app[DOWNSTREAM].notify.DeleteEndpoint, endpoint_ref(request)
    )


rotate_secret = item_relay(lambda services: services.notify.RotateEndpointSecret, endpoint_ref)


async def list_deliveries(request: web.Request) -> web.Response:
    ref = endpoint_ref(request)
    query = notify_pb2.ListDeliveriesRequest(
        business_id=ref.business_id, endpoint_id=ref.endpoint_id
    )
    return await relay_page(request, request.app[DOWNSTREAM].notify.ListDeliveries, query)


async def redeliver(request: web.Request) -> web.Response:
    ref = endpoint_ref(request)
    message = notify_pb2.RedeliverRequest(
        business_id=ref.business_id, endpoint_id=ref.endpoint_id, body_json=await read_body(request)
    )
    return await relay_document(
        request, request.app[DOWNSTREAM].notify.Redeliver, message, status=202
    )


ENDPOINTS = Resource(
    collection="/api/v1/webhook-endpoints",
    item="/api/v1/webhook-endpoints/{endpoint_id}",
    tag="Webhook endpoints",
    one="webhook endpoint",
)

routes = [
    ENDPOINTS.route(
        "create",
        create_endpoint,
        Reply(201, NewWebhookEndpoint, "The endpoint and its signing secret"),
        description="Subscribes an https URL to booking events (`*` for every event). The "
        "answer carries the signing secret, shown this once. Private, loopback and "
        "link-local targets are refused.",
        body=Body(EndpointFields, checked=False),
        idempotent=True,
    ),
    ENDPOINTS.route(
        "list", list_endpoints, Reply(200, WebhookEndpointList, "One page of endpoints")
    ),
    ENDPOINTS.route(
        "get", show_endpoint, Reply(200, WebhookEndpoint, "The endpoint (without its secret)")
    ),
    ENDPOINTS.route(
        "update",
        update_endpoint,
        Reply(200, WebhookEndpoint, "The updated endpoint"),
        description="Send only the fields to change (url, events, description, enabled).",
        body=Body(EndpointFields, required=False, checked=False, partial=True),
        conflicts=False,
    ),
    ENDPOINTS.route("delete", delete_endpoint, Reply(204, None, "Deleted"), conflicts=False),
    ENDPOINTS.action(
        "POST",
        "/rotate-secret",
        "rotate_webhook_endpoint_secret",
        "Rotate the signing secret",
        rotate_secret,
        Reply(200, RotatedWebhookEndpoint, "The endpoint and its new secret"),
        description="A new secret, shown this once; the previous one keeps signing beside "
        "it for 24 hours.",
        idempotent=True,
    ),
    ENDPOINTS.action(
        "GET",
        "/deliveries",
        "list_webhook_deliveries",
        "List recent deliveries",
        list_deliveries,
        Reply(200, WebhookDeliveryList, "One page of deliveries, with attempts"),
        paged=True,
    ),
    ENDPOINTS.action(
        "POST",
        "/redeliver",
        "redeliver_webhook_event",
        "Redeliver an event",
        redeliver,
        Reply(202, WebhookDelivery, "A new delivery of the event, queued"),
        body=Body(RedeliverRequest, checked=False),
        idempotent=True,
        errors={
            404: "No such endpoint, or no such event of this business",
            409: "The endpoint is disabled; enable it first",
        },
    ),
]
