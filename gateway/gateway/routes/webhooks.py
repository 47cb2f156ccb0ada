"""Webhook endpoints for business and hub keys: create, list, show, update, delete,
rotate the secret, list recent deliveries, redeliver an event (served by notify-service,
which validates the bodies)."""

from __future__ import annotations

from aiohttp import web
from calendence.notify.v1 import notify_pb2

from gateway.appkeys import DOWNSTREAM
from gateway.auth import MANAGING_KINDS, business_of
from gateway.http_io import (
    call,
    page_params,
    page_response,
    path_uuid,
    raw_json_response,
    read_body,
)
from gateway.idempotency import idempotent

routes = web.RouteTableDef()
BASE = "/api/v1/webhook-endpoints"


def endpoint_ref(request: web.Request) -> notify_pb2.EndpointRef:
    return notify_pb2.EndpointRef(
        business_id=business_of(request, *MANAGING_KINDS),
        endpoint_id=path_uuid(request, "endpoint_id"),
    )


@routes.post(BASE)
@idempotent
async def create_endpoint(request: web.Request) -> web.Response:
    business_id = business_of(request, *MANAGING_KINDS)
    body = await read_body(request)
    answer = await call(
        request,
        request.app[DOWNSTREAM].notify.CreateEndpoint,
        notify_pb2.CreateEndpointRequest(business_id=business_id, body_json=body),
    )
    return raw_json_response(answer.json, status=201)


@routes.get(BASE, allow_head=False)
async def list_endpoints(request: web.Request) -> web.Response:
    business_id = business_of(request, *MANAGING_KINDS)
    cursor, limit = page_params(request)
    page = await call(
        request,
        request.app[DOWNSTREAM].notify.ListEndpoints,
        notify_pb2.ListEndpointsRequest(business_id=business_id, cursor=cursor, limit=limit),
    )
    return page_response(list(page.items_json), page.next_cursor)


@routes.get(BASE + "/{endpoint_id}", allow_head=False)
async def show_endpoint(request: web.Request) -> web.Response:
    answer = await call(request, request.app[DOWNSTREAM].notify.GetEndpoint, endpoint_ref(request))
    return raw_json_response(answer.json)


@routes.patch(BASE + "/{endpoint_id}")
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


@routes.delete(BASE + "/{endpoint_id}")
async def delete_endpoint(request: web.Request) -> web.Response:
    await call(request, request.app[DOWNSTREAM].notify.DeleteEndpoint, endpoint_ref(request))
    return web.Response(status=204)


@routes.post(BASE + "/{endpoint_id}/rotate-secret")
@idempotent
async def rotate_secret(request: web.Request) -> web.Response:
    answer = await call(
        request, request.app[DOWNSTREAM].notify.RotateEndpointSecret, endpoint_ref(request)
    )
    return raw_json_response(answer.json)


@routes.get(BASE + "/{endpoint_id}/deliveries", allow_head=False)
async def list_deliveries(request: web.Request) -> web.Response:
    ref = endpoint_ref(request)
    cursor, limit = page_params(request)
    page = await call(
        request,
        request.app[DOWNSTREAM].notify.ListDeliveries,
        notify_pb2.ListDeliveriesRequest(
            business_id=ref.business_id, endpoint_id=ref.endpoint_id, cursor=cursor, limit=limit
        ),
    )
    return page_response(list(page.items_json), page.next_cursor)


@routes.post(BASE + "/{endpoint_id}/redeliver")
@idempotent
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
