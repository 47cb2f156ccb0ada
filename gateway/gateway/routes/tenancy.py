"""Sessions, businesses of a hub, and API keys."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aiohttp import web
from calendence.auth.v1 import auth_pb2
from calendence.catalogue.v1 import catalogue_pb2
from calendence.errors import InvalidInput
from calendence.schemas.catalogue import BusinessFields
from calendence.schemas.common import Schema
from calendence.timefmt import from_timestamp, to_iso
from pydantic import Field

from gateway.appkeys import AUTHENTICATOR, DOWNSTREAM
from gateway.auth import (
    KINDS_BY_PROTO,
    MANAGING_KINDS,
    KeyKind,
    bearer_token,
    business_of,
    require_kind,
)
from gateway.http_io import (
    call,
    json_response,
    page_params,
    page_response,
    path_uuid,
    raw_json_response,
    read_model,
    read_optional_model,
)

routes = web.RouteTableDef()


class SessionRequest(Schema):
    # A hub key names the business here (or in the Calendence-Business header).
    business_id: UUID | None = None


class BusinessKeyRequest(Schema):
    name: Annotated[str, Field(max_length=200)] | None = None


def issued_key_document(issued: auth_pb2.IssuedKey, object_name: str) -> dict[str, object]:
    document: dict[str, object] = {
        "object": object_name,
        "id": issued.key_id,
        "kind": KINDS_BY_PROTO[issued.kind].value,
        # Shown this once: only its hash is kept.
        "token": issued.token,
        "business_id": issued.business_id or None,
        "created_at": to_iso(from_timestamp(issued.created_at)),
        "expires_at": (
            to_iso(from_timestamp(issued.expires_at)) if issued.HasField("expires_at") else None
        ),
    }
    return document


@routes.post("/api/v1/sessions")
async def create_session(request: web.Request) -> web.Response:
    principal = require_kind(request, *MANAGING_KINDS)
    wanted = await read_optional_model(request, SessionRequest)
    if wanted.business_id is not None and str(wanted.business_id) != principal.business_id:
        # Resolve the key again for the named business: 404 unless a hub key owns it.
        principal = await request.app[AUTHENTICATOR].authenticate(
            bearer_token(request), str(wanted.business_id)
        )
    if not principal.business_id:
        raise InvalidInput(
            "a hub key must name the business", fields={"business_id": "required with a hub key"}
        )
    issued = await call(
        request,
        request.app[DOWNSTREAM].auth.CreateSession,
        auth_pb2.CreateSessionRequest(business_id=principal.business_id),
    )
    return json_response(issued_key_document(issued, "session"), status=201)


@routes.post("/api/v1/businesses")
async def create_business(request: web.Request) -> web.Response:
    principal = require_kind(request, KeyKind.HUB)
    _, body = await read_model(request, BusinessFields)
    answer = await call(
        request,
        request.app[DOWNSTREAM].catalogue.CreateBusiness,
        catalogue_pb2.CreateBusinessRequest(hub_id=principal.hub_id, body_json=body),
    )
    return raw_json_response(answer.json, status=201)


@routes.get("/api/v1/businesses")
async def list_businesses(request: web.Request) -> web.Response:
    principal = require_kind(request, KeyKind.HUB)
    cursor, limit = page_params(request)
    page = await call(
        request,
        request.app[DOWNSTREAM].catalogue.ListBusinesses,
        catalogue_pb2.ListBusinessesRequest(hub_id=principal.hub_id, cursor=cursor, limit=limit),
    )
    return page_response(list(page.items_json), page.next_cursor)


@routes.post("/api/v1/api-keys")
async def create_business_key(request: web.Request) -> web.Response:
    """A hub key makes a business key for one of its businesses (Calendence-Business)."""
    business_id = business_of(request, KeyKind.HUB)
    fields = await read_optional_model(request, BusinessKeyRequest)
    issued = await call(
        request,
        request.app[DOWNSTREAM].auth.CreateBusinessKey,
        auth_pb2.CreateBusinessKeyRequest(business_id=business_id, name=fields.name or ""),
    )
    return json_response(issued_key_document(issued, "api_key"), status=201)


@routes.delete("/api/v1/api-keys/{key_id}")
async def revoke_key(request: web.Request) -> web.Response:
    principal = require_kind(request, *MANAGING_KINDS)
    await call(
        request,
        request.app[DOWNSTREAM].auth.RevokeKey,
        auth_pb2.RevokeKeyRequest(
            key_id=path_uuid(request, "key_id"),
            business_id=principal.business_id if principal.kind is KeyKind.BUSINESS else "",
            hub_id=principal.hub_id if principal.kind is KeyKind.HUB else "",
        ),
    )
    return web.Response(status=204)
