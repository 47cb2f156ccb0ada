"""gRPC servicers: translate protobuf messages to domain calls and back, nothing more."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from uuid import UUID

from calendence import jsonfmt
from calendence.auth.v1 import auth_pb2, auth_pb2_grpc
from calendence.catalogue.v1 import catalogue_pb2, catalogue_pb2_grpc
from calendence.errors import InvalidInput
from calendence.ids import optional_uuid, parse_uuid
from calendence.pages import filtered_page_message, oldest_first_page, page_message
from calendence.principals import PROTO_BY_KIND, KeyKind, principal_message
from calendence.rpc import ServicerContext
from calendence.schemas.catalogue import BusinessFields
from calendence.schemas.common import parse_json
from calendence.timefmt import to_timestamp

from booking_service.catalogue import Catalogue
from booking_service.tenants import IssuedKey, Tenants
from booking_service.time_off import TimeOffEntries

_RESOURCE_KINDS = {
    catalogue_pb2.RESOURCE_KIND_LOCATION: "locations",
    catalogue_pb2.RESOURCE_KIND_SERVICE: "services",
    catalogue_pb2.RESOURCE_KIND_STAFF: "staff",
    catalogue_pb2.RESOURCE_KIND_CUSTOM_FIELD: "custom_fields",
}


def issued_key_message(issued: IssuedKey) -> auth_pb2.IssuedKey:
    message = auth_pb2.IssuedKey(
        key_id=str(issued.key.id),
        kind=PROTO_BY_KIND[KeyKind(issued.key.kind)],
        token=issued.secret,
        business_id=str(issued.key.business_id or ""),
        hub_id=str(issued.key.hub_id or ""),
        created_at=to_timestamp(issued.key.created_at),
    )
    if issued.key.expires_at is not None:
        message.expires_at.CopyFrom(to_timestamp(issued.key.expires_at))
    return message


@dataclass
class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    tenants: Tenants

    async def Authenticate(
        self, request: auth_pb2.AuthenticateRequest, context: ServicerContext
    ) -> auth_pb2.Principal:
        principal = await self.tenants.authenticate(
            request.token, optional_uuid(request.business_id, "business_id")
        )
        return principal_message(principal)

    async def CreateSession(
        self, request: auth_pb2.CreateSessionRequest, context: ServicerContext
    ) -> auth_pb2.IssuedKey:
        issued = await self.tenants.create_session(parse_uuid(request.business_id, "business_id"))
        return issued_key_message(issued)

    async def CreateBusinessKey(
        self, request: auth_pb2.CreateBusinessKeyRequest, context: ServicerContext
    ) -> auth_pb2.IssuedKey:
        issued = await self.tenants.create_business_key(
            parse_uuid(request.business_id, "business_id"), request.name or None
        )
        return issued_key_message(issued)

    async def RevokeKey(
        self, request: auth_pb2.RevokeKeyRequest, context: ServicerContext
    ) -> auth_pb2.RevokeKeyResponse:
        await self.tenants.revoke(
            parse_uuid(request.key_id, "key_id"),
            business_id=optional_uuid(request.business_id, "business_id"),
            hub_id=optional_uuid(request.hub_id, "hub_id"),
        )
        return auth_pb2.RevokeKeyResponse()


def _resource(document: object) -> catalogue_pb2.Resource:
    return catalogue_pb2.Resource(json=jsonfmt.dumps(document))


@dataclass
class CatalogueServicer(catalogue_pb2_grpc.CatalogueServiceServicer):
    catalogue: Catalogue
    tenants: Tenants
    time_off: TimeOffEntries

    async def CreateResource(
        self, request: catalogue_pb2.CreateResourceRequest, context: ServicerContext
    ) -> catalogue_pb2.Resource:
        business_id = parse_uuid(request.business_id, "business_id")
        document = await self.catalogue.create(_kind(request.kind), business_id, request.body_json)
        return _resource(document)

    async def GetResource(
        self, request: catalogue_pb2.ResourceRef, context: ServicerContext
    ) -> catalogue_pb2.Resource:
        document = await self.catalogue.get(*_resource_ref(request))
        return _resource(document)

    async def ListResources(
        self, request: catalogue_pb2.ListResourcesRequest, context: ServicerContext
    ) -> catalogue_pb2.ResourcePage:
        business_id = parse_uuid(request.business_id, "business_id")
        page = await self.catalogue.list_page(
            _kind(request.kind), business_id, request.cursor, request.limit
        )
        return page_message(catalogue_pb2.ResourcePage, *page)

    async def UpdateResource(
        self, request: catalogue_pb2.UpdateResourceRequest, context: ServicerContext
    ) -> catalogue_pb2.Resource:
        document = await self.catalogue.update(*_resource_ref(request), request.patch_json)
        return _resource(document)

    async def DeleteResource(
        self, request: catalogue_pb2.ResourceRef, context: ServicerContext
    ) -> catalogue_pb2.DeleteResourceResponse:
        await self.catalogue.delete(*_resource_ref(request))
        return catalogue_pb2.DeleteResourceResponse()

    async def CreateBusiness(
        self, request: catalogue_pb2.CreateBusinessRequest, context: ServicerContext
    ) -> catalogue_pb2.Resource:
        fields = parse_json(BusinessFields, request.body_json)
        row = await self.tenants.create_business(optional_uuid(request.hub_id, "hub_id"), fields)
        # Its (empty) catalogue snapshot, so that hold-service knows the business at once.
        await self.catalogue.on_change(row["id"])
        return _resource(render_business(row))

    async def ListBusinesses(
        self, request: catalogue_pb2.ListBusinessesRequest, context: ServicerContext
    ) -> catalogue_pb2.ResourcePage:
        rows_after = functools.partial(
            self.tenants.repository.list_businesses, parse_uuid(request.hub_id, "hub_id")
        )
        shown, next_cursor = await oldest_first_page(request.cursor, request.limit, rows_after)
        return page_message(
            catalogue_pb2.ResourcePage, [render_business(r) for r in shown], next_cursor
        )

    async def GetBusiness(
        self, request: catalogue_pb2.GetBusinessRequest, context: ServicerContext
    ) -> catalogue_pb2.Resource:
        row = await self.tenants.get_business(parse_uuid(request.business_id, "business_id"))
        return _resource(render_business(row))

    async def UpdateBusiness(
        self, request: catalogue_pb2.UpdateBusinessRequest, context: ServicerContext
    ) -> catalogue_pb2.Resource:
        business_id = parse_uuid(request.business_id, "business_id")
        row = await self.tenants.update_business(business_id, request.patch_json)
        # The booking policy is part of the catalogue snapshot hold-service reads.
        await self.catalogue.on_change(business_id)
        return _resource(render_business(row))

    async def CreateTimeOff(
        self, request: catalogue_pb2.CreateTimeOffRequest, context: ServicerContext
    ) -> catalogue_pb2.Resource:
        document = await self.time_off.create(
            parse_uuid(request.business_id, "business_id"), request.body_json
        )
        return _resource(document)

    async def GetTimeOff(
        self, request: catalogue_pb2.TimeOffRef, context: ServicerContext
    ) -> catalogue_pb2.Resource:
        document = await self.time_off.get(
            parse_uuid(request.business_id, "business_id"), parse_uuid(request.id, "id")
        )
        return _resource(document)

    async def ListTimeOff(
        self, request: catalogue_pb2.ListTimeOffRequest, context: ServicerContext
    ) -> catalogue_pb2.ResourcePage:
        return await filtered_page_message(
            catalogue_pb2.ResourcePage, self.time_off.list_page, request
        )

    async def DeleteTimeOff(
        self, request: catalogue_pb2.TimeOffRef, context: ServicerContext
    ) -> catalogue_pb2.DeleteResourceResponse:
        await self.time_off.delete(
            parse_uuid(request.business_id, "business_id"), parse_uuid(request.id, "id")
        )
        return catalogue_pb2.DeleteResourceResponse()


def render_business(row: dict[str, object]) -> dict[str, object]:
    return {"object": "business"} | {k: v for k, v in row.items() if k != "seq"}


def _resource_ref(
    request: catalogue_pb2.ResourceRef | catalogue_pb2.UpdateResourceRequest,
) -> tuple[str, UUID, UUID]:
    """The kind, business and id of the catalogue resource a request names."""
    return (
        _kind(request.kind),
        parse_uuid(request.business_id, "business_id"),
        parse_uuid(request.id, "id"),
    )


def _kind(kind: catalogue_pb2.ResourceKind.ValueType) -> str:
    try:
        return _RESOURCE_KINDS[kind]
    except KeyError:
        raise InvalidInput("unknown resource kind", fields={"kind": "unknown"}) from None
