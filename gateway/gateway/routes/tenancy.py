"""Sessions, businesses of a hub, and API keys."""

from __future__ import annotations

from aiohttp import web
from calendence.auth.v1 import auth_pb2
from calendence.catalogue.v1 import catalogue_pb2
from calendence.errors import InvalidInput, NotFound
from calendence.principals import KIND_BY_PROTO, KeyKind
from calendence.schemas.catalogue import Business, BusinessFields, BusinessList
from calendence.schemas.tenancy import ApiKey, BusinessKeyRequest, Session, SessionRequest
from calendence.timefmt import from_timestamp, to_iso

from gateway.appkeys import AUTHENTICATOR, DOWNSTREAM
from gateway.auth import MANAGING_KINDS, bearer_token, principal_of
from gateway.contract import Body, Operation, Reply, route, validated_body
from gateway.http_io import call, json_response, raw_json_response
from gateway.relay import relay_document, relay_no_content, relay_page
from gateway.resource import Resource

SESSIONS = "Sessions and keys"
BUSINESSES = "Businesses"


def issued_key_document(issued: auth_pb2.IssuedKey, object_name: str) -> dict[str, object]:
    document: dict[str, object] = {
        "object": object_name,
        "id": issued.key_id,
        "kind": KIND_BY_PROTO[issued.kind].value,
        # Shown this once: only its hash is kept.
        "token": issued.token,
        "business_id": issued.business_id or None,
        "created_at": to_iso(from_timestamp(issued.created_at)),
        "expires_at": (
            to_iso(from_timestamp(issued.expires_at)) if issued.HasField("expires_at") else None
        ),
    }
    return document


async def create_session(request: web.Request) -> web.Response:
    principal = principal_of(request)
    wanted = validated_body(request, SessionRequest)
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


async def create_business(request: web.Request) -> web.Response:
    message = catalogue_pb2.CreateBusinessRequest(
        hub_id=principal_of(request).hub_id, body_json=await request.read()
    )
    return await relay_document(
        request, request.app[DOWNSTREAM].catalogue.CreateBusiness, message, status=201
    )


async def list_businesses(request: web.Request) -> web.Response:
    query = catalogue_pb2.ListBusinessesRequest(hub_id=principal_of(request).hub_id)
    return await relay_page(request, request.app[DOWNSTREAM].catalogue.ListBusinesses, query)


async def _named_business(request: web.Request) -> str:
    """The business in the path, when the key may act for it; otherwise 404."""
    principal = principal_of(request)
    wanted = request.match_info["business_id"]
    if principal.business_id == wanted:
        return wanted
    if principal.kind is KeyKind.HUB:
        # Resolved as the Calendence-Business header would be: 404 outside the hub.
        narrowed = await request.app[AUTHENTICATOR].authenticate(bearer_token(request), wanted)
        return narrowed.business_id
    raise NotFound("no such business")


async def show_business(request: web.Request) -> web.Response:
    message = catalogue_pb2.GetBusinessRequest(business_id=await _named_business(request))
    return await relay_document(request, request.app[DOWNSTREAM].catalogue.GetBusiness, message)


async def update_business(request: web.Request) -> web.Response:
    business_id = await _named_business(request)
    answer = await call(
        request,
        request.app[DOWNSTREAM].catalogue.UpdateBusiness,
        catalogue_pb2.UpdateBusinessRequest(
            business_id=business_id, patch_json=await request.read() or b"{}"
        ),
    )
    # Keys of this business cached here carry its old allowed origins; other replicas
    # drop theirs within AUTH_CACHE_SECONDS.
    request.app[AUTHENTICATOR].forget_business(business_id)
    return raw_json_response(answer.json)


async def create_business_key(request: web.Request) -> web.Response:
    """A hub key makes a business key for one of its businesses (Calendence-Business)."""
    fields = validated_body(request, BusinessKeyRequest)
    issued = await call(
        request,
        request.app[DOWNSTREAM].auth.CreateBusinessKey,
        auth_pb2.CreateBusinessKeyRequest(
            business_id=principal_of(request).business_id, name=fields.name or ""
        ),
    )
    return json_response(issued_key_document(issued, "api_key"), status=201)


async def revoke_key(request: web.Request) -> web.Response:
    principal = principal_of(request)
    return await relay_no_content(
        request,
        request.app[DOWNSTREAM].auth.RevokeKey,
        auth_pb2.RevokeKeyRequest(
            key_id=request.match_info["key_id"],
            business_id=principal.business_id if principal.kind is KeyKind.BUSINESS else "",
            hub_id=principal.hub_id if principal.kind is KeyKind.HUB else "",
        ),
    )


# The hub itself is the subject (its businesses), or the path names the business.
BUSINESS_RESOURCE = Resource(
    collection="/api/v1/businesses",
    item="/api/v1/businesses/{business_id}",
    tag=BUSINESSES,
    one="business",
    needs_business=False,
    missing="Not this key's business (nor one of its hub's)",
)

routes = [
    route(
        Operation(
            "POST",
            "/api/v1/sessions",
            name="create_session",
            summary="Create a session token",
            tag=SESSIONS,
            key_kinds=MANAGING_KINDS,
            needs_business=False,
            description="A short-lived token (`cal_ses_...`, 2 hours) for a booking widget in "
            "a browser: it may read availability, hold and release slots, create and show "
            "bookings, nothing else. Make it on your server with a business key (or a hub "
            "key naming the business) and hand it to the page.",
            body=Body(SessionRequest, required=False),
            replies=(Reply(201, Session, "The session token, shown this once"),),
            conflicts=False,
            errors={404: "The business is not this hub's"},
        ),
        create_session,
    ),
    BUSINESS_RESOURCE.route(
        "create",
        create_business,
        Reply(201, Business, "The new business"),
        body=Body(BusinessFields),
        conflicts=False,
        key_kinds=(KeyKind.HUB,),
    ),
    BUSINESS_RESOURCE.route(
        "list",
        list_businesses,
        Reply(200, BusinessList, "One page of businesses"),
        "List the hub's businesses",
        key_kinds=(KeyKind.HUB,),
    ),
    BUSINESS_RESOURCE.route("get", show_business, Reply(200, Business, "The business")),
    BUSINESS_RESOURCE.route(
        "update",
        update_business,
        Reply(200, Business, "The updated business"),
        description="Send only the fields to change. `allowed_origins` lists the web "
        "origins (such as `https://shop.example`) whose pages may call the API with this "
        "business's session tokens: answers to them carry "
        "`Access-Control-Allow-Origin`. Every gateway applies a change within "
        "AUTH_CACHE_SECONDS (30 s by default).",
        body=Body(BusinessFields, required=False, checked=False, partial=True),
        conflicts=False,
    ),
    route(
        Operation(
            "POST",
            "/api/v1/api-keys",
            name="create_api_key",
            summary="Create a business key",
            tag=SESSIONS,
            key_kinds=(KeyKind.HUB,),
            description="A hub key makes a business API key (`cal_biz_...`) for the "
            "business named in the Calendence-Business header.",
            body=Body(BusinessKeyRequest, required=False),
            replies=(Reply(201, ApiKey, "The key, shown this once"),),
            conflicts=False,
        ),
        create_business_key,
    ),
    route(
        Operation(
            "DELETE",
            "/api/v1/api-keys/{key_id}",
            name="revoke_api_key",
            summary="Revoke a key",
            tag=SESSIONS,
            key_kinds=MANAGING_KINDS,
            needs_business=False,
            description="Revokes a business key or session token of the caller's business "
            "(a hub key: of any of its businesses). Every gateway refuses it within a second.",
            replies=(Reply(204, None, "Revoked"),),
            conflicts=False,
            errors={404: "No such key in this business or hub"},
        ),
        revoke_key,
    ),
]
