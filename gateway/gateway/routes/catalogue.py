"""Catalogue CRUD for business and hub keys: locations, services, staff, custom fields."""

from __future__ import annotations

from aiohttp import web
from calendence.catalogue.v1 import catalogue_pb2
from calendence.schemas.catalogue import CATALOGUE_FIELDS

from gateway.appkeys import DOWNSTREAM
from gateway.auth import MANAGING_KINDS, business_of
from gateway.http_io import (
    call,
    page_params,
    page_response,
    path_uuid,
    raw_json_response,
    read_model,
)

# URL segment -> (schema name, resource kind on the wire)
COLLECTIONS = {
    "locations": ("locations", catalogue_pb2.RESOURCE_KIND_LOCATION),
    "services": ("services", catalogue_pb2.RESOURCE_KIND_SERVICE),
    "staff": ("staff", catalogue_pb2.RESOURCE_KIND_STAFF),
    "custom-fields": ("custom_fields", catalogue_pb2.RESOURCE_KIND_CUSTOM_FIELD),
}


def collection_routes(segment: str) -> list[web.RouteDef]:
    schema_name, kind = COLLECTIONS[segment]
    schema = CATALOGUE_FIELDS[schema_name]

    async def create(request: web.Request) -> web.Response:
        business_id = business_of(request, *MANAGING_KINDS)
        _, body = await read_model(request, schema)
        answer = await call(
            request,
            request.app[DOWNSTREAM].catalogue.CreateResource,
            catalogue_pb2.CreateResourceRequest(business_id=business_id, kind=kind, body_json=body),
        )
        return raw_json_response(answer.json, status=201)

    async def list_page(request: web.Request) -> web.Response:
        business_id = business_of(request, *MANAGING_KINDS)
        cursor, limit = page_params(request)
        page = await call(
            request,
            request.app[DOWNSTREAM].catalogue.ListResources,
            catalogue_pb2.ListResourcesRequest(
                business_id=business_id, kind=kind, cursor=cursor, limit=limit
            ),
        )
        return page_response(list(page.items_json), page.next_cursor)

    def ref(request: web.Request) -> catalogue_pb2.ResourceRef:
        return catalogue_pb2.ResourceRef(
            business_id=business_of(request, *MANAGING_KINDS),
            kind=kind,
            id=path_uuid(request, "id"),
        )

    async def show(request: web.Request) -> web.Response:
        answer = await call(request, request.app[DOWNSTREAM].catalogue.GetResource, ref(request))
        return raw_json_response(answer.json)

    async def update(request: web.Request) -> web.Response:
        target = ref(request)
        body = await request.read()
        answer = await call(
            request,
            request.app[DOWNSTREAM].catalogue.UpdateResource,
            catalogue_pb2.UpdateResourceRequest(
                business_id=target.business_id, kind=kind, id=target.id, patch_json=body or b"{}"
            ),
        )
        return raw_json_response(answer.json)

    async def delete(request: web.Request) -> web.Response:
        await call(request, request.app[DOWNSTREAM].catalogue.DeleteResource, ref(request))
        return web.Response(status=204)

    base = f"/api/v1/{segment}"
    return [
        web.post(base, create),
        web.get(base, list_page, allow_head=False),
        web.get(base + "/{id}", show, allow_head=False),
        web.patch(base + "/{id}", update),
        web.delete(base + "/{id}", delete),
    ]


routes = [route for segment in COLLECTIONS for route in collection_routes(segment)]
