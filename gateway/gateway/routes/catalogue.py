"""Catalogue CRUD for business and hub keys: locations, services, staff, custom fields."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from calendence.catalogue.v1 import catalogue_pb2
from calendence.schemas.catalogue import CATALOGUE_ANSWERS, CATALOGUE_FIELDS

from gateway.appkeys import DOWNSTREAM
from gateway.auth import principal_of
from gateway.contract import Body, Reply
from gateway.relay import item_relay, relay_document, relay_no_content, relay_page
from gateway.resource import Resource


@dataclass(frozen=True)
class Collection:
    segment: str  # in the URL
    schema_name: str  # in CATALOGUE_FIELDS
    kind: catalogue_pb2.ResourceKind.ValueType
    tag: str
    one: str  # how the docs name one item
    about: str


COLLECTIONS = (
    Collection(
        "locations",
        "locations",
        catalogue_pb2.RESOURCE_KIND_LOCATION,
        "Locations",
        "location",
        "Places with an IANA time zone and weekly opening hours (local time).",
    ),
    Collection(
        "services",
        "services",
        catalogue_pb2.RESOURCE_KIND_SERVICE,
        "Services",
        "service",
        "What can be booked: duration, price, optional deposit and buffer, where.",
    ),
    Collection(
        "staff",
        "staff",
        catalogue_pb2.RESOURCE_KIND_STAFF,
        "Staff",
        "staff member",
        "Who performs services, where, and (optionally) their own weekly hours.",
    ),
    Collection(
        "custom-fields",
        "custom_fields",
        catalogue_pb2.RESOURCE_KIND_CUSTOM_FIELD,
        "Custom fields",
        "custom field",
        "Questions a booking answers in `custom_field_values`.",
    ),
)


def collection_routes(collection: Collection) -> list[web.RouteDef]:
    kind = collection.kind
    schema = CATALOGUE_FIELDS[collection.schema_name]
    item, page = CATALOGUE_ANSWERS[collection.schema_name]

    async def create(request: web.Request) -> web.Response:
        message = catalogue_pb2.CreateResourceRequest(
            business_id=principal_of(request).business_id,
            kind=kind,
            body_json=await request.read(),
        )
        return await relay_document(
            request, request.app[DOWNSTREAM].catalogue.CreateResource, message, status=201
        )

    async def list_page(request: web.Request) -> web.Response:
        business_id = principal_of(request).business_id
        query = catalogue_pb2.ListResourcesRequest(business_id=business_id, kind=kind)
        return await relay_page(request, request.app[DOWNSTREAM].catalogue.ListResources, query)

    def ref(request: web.Request) -> catalogue_pb2.ResourceRef:
        return catalogue_pb2.ResourceRef(
            business_id=principal_of(request).business_id, kind=kind, id=request.match_info["id"]
        )

    show = item_relay(lambda services: services.catalogue.GetResource, ref)

    async def update(request: web.Request) -> web.Response:
        target = ref(request)
        message = catalogue_pb2.UpdateResourceRequest(
            business_id=target.business_id,
            kind=kind,
            id=target.id,
            patch_json=await request.read() or b"{}",
        )
        return await relay_document(
            request, request.app[DOWNSTREAM].catalogue.UpdateResource, message
        )

    async def delete(request: web.Request) -> web.Response:
        return await relay_no_content(
            request, request.app[DOWNSTREAM].catalogue.DeleteResource, ref(request)
        )

    base = f"/api/v1/{collection.segment}"
    resource = Resource(
        collection=base,
        item=base + "/{id}",
        tag=collection.tag,
        one=collection.one,
    )
    one = collection.one
    return [
        resource.route(
            "create",
            create,
            Reply(201, item, f"The new {one}"),
            description=collection.about,
            body=Body(schema),
            conflicts=False,
            errors={422: "Invalid fields, or ids that name nothing in this business"},
        ),
        resource.route(
            "list", list_page, Reply(200, page, "One page, in the order they were made")
        ),
        resource.route("get", show, Reply(200, item, f"The {one}")),
        resource.route(
            "update",
            update,
            Reply(200, item, f"The updated {one}"),
            description="Send only the fields to change; the result must be a valid "
            f"{one} as a whole.",
            body=Body(schema, required=False, checked=False, partial=True),
        ),
        resource.route(
            "delete",
            delete,
            Reply(204, None, "Deleted"),
            description="Bookings made against it keep its details; it leaves the id "
            "lists that named it.",
        ),
    ]


routes = [definition for collection in COLLECTIONS for definition in collection_routes(collection)]
