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
from gateway.auth import MANAGING_KINDS, principal_of
from gateway.contract import Body, Operation, Reply, page_of_request, route
from gateway.http_io import call, page_response, raw_json_response, read_body

TAG = "Webhook endpoints"
BASE = "/api/v1/webhook-endpoints"
ONE = BASE + "/{endpoint_id}"
_MISSING = {404: "No such webhook endpoint in this business"}


def endpoint_ref(request: web.Request) -> notify_pb2.EndpointRef:
    return notify_pb2.EndpointRef(
        business_id=principal_of(request).business_id,
        endpoint_id=request.match_info["endpoint_id"],
    )


async def create_endpoint(request: web.Request) -> web.Response:
    answer = await call(
        request,
        request.app[DOWNSTREAM].notify.CreateEndpoint,
        notify_pb2.CreateEndpointRequest(
            business_id=principal_of(request).business_id, body_json=await read_body(request)
        ),
    )
    return raw_json_response(answer.json, status=201)


async def list_endpoints(request: web.Request) -> web.Response:
    cursor, limit = page_of_request(request)
    page = await call(
        request,
        request.app[DOWNSTREAM].notify.ListEndpoints,
        notify_pb2.ListEndpointsRequest(
            business_id=principal_of(request).business_id, cursor=cursor, limit=limit
        ),
    )
    return page_response(list(page.items_json), page.next_cursor)


async def show_endpoint(request: web.Request) -> web.Response:
    answer = await call(request, request.app[DOWNSTREAM].notify.GetEndpoint, endpoint_ref(request))
    return raw_json_response(answer.json)


async def update_endpoint(request: web.Request) -> web.Response:
    ref = endpoint_ref(request)
    answer = await call(
        request,
        request.app[DOWNSTREAM].notify.UpdateEndpoint,
        notify_pb2.UpdateEndpointRequest(
            business_id=ref.business_id,
            endpoint_id=ref.endpoint_id,
            patch_json=await request.read() or b"{}",
        ),
    )
    return raw_json_response(answer.json)


async def delete_endpoint(request: web.Request) -> web.Response:
    await call(request, request.app[DOWNSTREAM].notify.DeleteEndpoint, endpoint_ref(request))
    return web.Response(status=204)


async def rotate_secret(request: web.Request) -> web.Response:
    answer = await call(
        request, request.app[DOWNSTREAM].notify.RotateEndpointSecret, endpoint_ref(request)
    )
    return raw_json_response(answer.json)


async def list_deliveries(request: web.Request) -> web.Response:
    ref = endpoint_ref(request)
    cursor, limit = page_of_request(request)
    page = await call(
        request,
        request.app[DOWNSTREAM].notify.ListDeliveries,
        notify_pb2.ListDeliveriesRequest(
            business_id=ref.business_id, endpoint_id=ref.endpoint_id, cursor=cursor, limit=limit
        ),
    )
    return page_response(list(page.items_json), page.next_cursor)


async def redeliver(request: web.Request) -> web.Response:
    ref = endpoint_ref(request)
    answer = await call(
        request,
        request.app[DOWNSTREAM].notify.Redeliver,
        notify_pb2.RedeliverRequest(
            business_id=ref.business_id,
            endpoint_id=ref.endpoint_id,
            body_json=await read_body(request),
        ),
    )
    return raw_json_response(answer.json, status=202)


routes = [
    route(
        Operation(
            "POST",
            BASE,
            name="create_webhook_endpoint",
            summary="Create a webhook endpoint",
            tag=TAG,
            key_kinds=MANAGING_KINDS,
            description="Subscribes an https URL to booking events (`*` for every event). The "
            "answer carries the signing secret, shown this once. Private, loopback and "
            "link-local targets are refused.",
            body=Body(EndpointFields, checked=False),
            replies=(Reply(201, NewWebhookEndpoint, "The endpoint and its signing secret"),),
            idempotent=True,
        ),
        create_endpoint,
    ),
    route(
        Operation(
            "GET",
            BASE,
            name="list_webhook_endpoints",
            summary="List webhook endpoints",
            tag=TAG,
            key_kinds=MANAGING_KINDS,
            paged=True,
            replies=(Reply(200, WebhookEndpointList, "One page of endpoints"),),
        ),
        list_endpoints,
    ),
    route(
        Operation(
            "GET",
            ONE,
            name="get_webhook_endpoint",
            summary="Show a webhook endpoint",
            tag=TAG,
            key_kinds=MANAGING_KINDS,
            replies=(Reply(200, WebhookEndpoint, "The endpoint (without its secret)"),),
            errors=_MISSING,
        ),
        show_endpoint,
    ),
    route(
        Operation(
            "PATCH",
            ONE,
            name="update_webhook_endpoint",
            summary="Update a webhook endpoint",
            tag=TAG,
            key_kinds=MANAGING_KINDS,
            description="Send only the fields to change (url, events, description, enabled).",
            body=Body(EndpointFields, required=False, checked=False, partial=True),
            replies=(Reply(200, WebhookEndpoint, "The updated endpoint"),),
            conflicts=False,
            errors=_MISSING,
        ),
        update_endpoint,
    ),
    route(
        Operation(
            "DELETE",
            ONE,
            name="delete_webhook_endpoint",
            summary="Delete a webhook endpoint",
            tag=TAG,
            key_kinds=MANAGING_KINDS,
            replies=(Reply(204, None, "Deleted"),),
            conflicts=False,
            errors=_MISSING,
        ),
        delete_endpoint,
    ),
    route(
        Operation(
            "POST",
            ONE + "/rotate-secret",
            name="rotate_webhook_endpoint_secret",
            summary="Rotate the signing secret",
            tag=TAG,
            key_kinds=MANAGING_KINDS,
            description="A new secret, shown this once; the previous one keeps signing beside "
            "it for 24 hours.",
            replies=(Reply(200, RotatedWebhookEndpoint, "The endpoint and its new secret"),),
            idempotent=True,
            errors=_MISSING,
        ),
        rotate_secret,
    ),
    route(
        Operation(
            "GET",
            ONE + "/deliveries",
            name="list_webhook_deliveries",
            summary="List recent deliveries",
            tag=TAG,
            key_kinds=MANAGING_KINDS,
            paged=True,
            replies=(Reply(200, WebhookDeliveryList, "One page of deliveries, with attempts"),),
            errors=_MISSING,
        ),
        list_deliveries,
    ),
    route(
        Operation(
            "POST",
            ONE + "/redeliver",
            name="redeliver_webhook_event",
            summary="Redeliver an event",
            tag=TAG,
            key_kinds=MANAGING_KINDS,
            body=Body(RedeliverRequest, checked=False),
            replies=(Reply(202, WebhookDelivery, "A new delivery of the event, queued"),),
            idempotent=True,
            errors={
                404: "No such endpoint, or no such event of this business",
                409: "The endpoint is disabled; enable it first",
            },
        ),
        redeliver,
    ),
]
