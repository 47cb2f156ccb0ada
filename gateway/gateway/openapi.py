"""The OpenAPI 3.1 document, built from the route table the gateway serves.

Nothing here lists routes: `build_document` walks the application's router and reads
each route's `Operation` (gateway.contract), so the document describes exactly what
is registered, with the very pydantic models requests are checked against. A route
without an entry (other than the operator and docs routes below) is an error at start.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from calendence.principals import KeyKind
from calendence.schemas.problems import Problem
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gateway.auth import BUSINESS_HEADER
from gateway.contract import Operation, operation_of
from gateway.http_io import CURSOR_PATTERN, MAX_BODY_BYTES, MAX_PAGE_SIZE
from gateway.idempotency import HEADER as IDEMPOTENCY_HEADER
from gateway.idempotency import KEY_PATTERN as IDEMPOTENCY_KEY_PATTERN
from gateway.idempotency import MAX_KEY_LENGTH, REPLAYED_HEADER
from gateway.problems import PROBLEM_TYPE_BASE

OPENAPI_PATH = "/api/v1/openapi.json"
# Served, but not part of the API: Prometheus' scrape target and the docs page itself.
# The client's manage page (HTML) is a web page rather than API: its JSON twin is.
NOT_DOCUMENTED = frozenset(
    {
        "/metrics",
        "/docs",
        "/manage/{token}",
        "/manage/{token}/cancel",
        "/manage/{token}/reschedule",
    }
)
_REF = "#/components/schemas/{model}"
_PROBLEM = "application/problem+json"

TAGS = (
    (
        "Bookings",
        "Hold a slot, turn the hold into a booking, show, reschedule and cancel it; the "
        "bookable times. The flow a booking widget follows with a session token: "
        "`GET /api/v1/availability`, `POST /api/v1/bookings/hold`, `POST /api/v1/bookings`.",
    ),
    ("Sessions and keys", "Session tokens for widgets, business keys, revocation."),
    (
        "Businesses",
        "A hub's businesses and their settings (CORS origins, booking policy, reminders, "
        "client emails).",
    ),
    ("Locations", "Places, their time zone and opening hours."),
    ("Services", "What can be booked."),
    ("Staff", "Who performs services."),
    ("Custom fields", "Extra questions a booking answers."),
    ("Time off", "A staff member away, or a location closed, for a while."),
    ("Webhook endpoints", "Signed event deliveries to your servers."),
    ("Client emails", "Emails to a booking's client, and what became of each."),
    ("Stripe", "Stripe's own webhooks (deposits)."),
    (
        "Client self-service",
        "What a client does with their own booking through its `manage_url` (a page at "
        "`/manage/{token}` for browsers, these routes for widgets): see it, move it to "
        "another free time, cancel it, add it to a calendar. The token in the path is the "
        "only proof; it opens that one booking and stops working once it is cancelled or "
        "over. Each token has a rate-limit bucket of its own.",
    ),
    (
        "Calendars",
        "Bookings as iCalendar files, and a staff member's secret calendar feed.",
    ),
    ("Health", "Liveness and readiness, for load balancers and orchestrators."),
    ("API description", "This document."),
)

DESCRIPTION = f"""\
The Calendence booking API: find free times, hold a slot while the client fills in a
form, turn the hold into a booking, reschedule or cancel it. No slot is ever booked twice.

## Keys

Every `/api/v1` route but this document needs `Authorization: Bearer <key>`:

| key | prefix | may |
|---|---|---|
| hub key | `cal_hub_` | all, for its hub's businesses (named in `{BUSINESS_HEADER}`) |
| business key | `cal_biz_` | all, for its business |
| session token | `cal_ses_` | availability, holds, create and show a booking; 2 hours |

Each operation lists the kinds it takes (`x-key-kinds`). A missing or bad key is 401,
a valid key of another kind 403, another business's resource 404. Business and hub keys
are secrets for servers; a browser widget uses a session token made for it.

## Errors

Every error is an RFC 9457 problem (`application/problem+json`) with `type`, `title`,
`status`, `detail`, and for 422 `errors` naming each offending field. Every answer
carries `X-Request-Id` (yours, when you send a well-formed one: 8-128 of
`A-Z a-z 0-9 . _ : -`); quote it when reporting a problem.

## Rate limits

Each key has a token bucket, shared by every gateway: session tokens get a smaller one
than business and hub keys. Every answer to a key carries `RateLimit-Limit` (the bucket
size), `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the bucket is full
again), and `RateLimit-Policy`; over the limit the answer is 429 with `Retry-After`
(seconds).

## Browsers (CORS)

A business lists the web origins of its booking widget in `allowed_origins`
(`PATCH /api/v1/businesses/{{business_id}}`). Answers to a session token of that
business carry `Access-Control-Allow-Origin` for those origins only (401 answers, which
reveal nothing, for any origin, so a widget can tell its token expired). Preflight
requests (`OPTIONS`, which carry no key) are answered for any origin with the methods
of the path and the headers the API reads; the answer itself decides.

## Reminders and client emails

A business sets `reminders` (up to 5, e.g. `[{{"before_minutes": 1440}},
{{"before_minutes": 120}}]`) and `client_emails` (which of `confirmation`,
`cancellation`, `reschedule`, `reminder` its clients get; all four unless changed) with
`PATCH /api/v1/businesses/{{business_id}}`. Each reminder makes one `booking.reminder`
webhook event per live booking at its time (`data` is the booking plus `reminder`:
`before_minutes` and `due_at`), never for a cancelled booking, moved with a rescheduled
one, and skipped when its time had already passed when the booking was made or moved.
Client emails (plain text and HTML, times in the location's time zone, the booking as
an `.ics` attachment) are retried with backoff and listed with their state at
`GET /api/v1/bookings/{{booking_id}}/messages`; a refused or failing email never holds
up a booking or a webhook.

## Conventions

Times are ISO 8601 with an offset (a time without one is 422). Lists answer
`{{"object": "list", "data": [...], "has_more": ..., "next_cursor": ...}}`: pass
`next_cursor` back as `?cursor=`, `?limit=` is 1-{MAX_PAGE_SIZE}. POSTs that create take an
`{IDEMPOTENCY_HEADER}` header: a retry with the same key and body replays the first answer
(`{REPLAYED_HEADER}: true`), the same key with another body is 422; keys are kept 24
hours. Bodies are at most {MAX_BODY_BYTES // 1024} KiB.
"""

_ERROR_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, malformed, expired or revoked key",
    403: "A key of another kind (e.g. a session token) may not do this",
    404: "No such resource in this business",
    409: "Conflicts with the current state",
    413: f"The body is larger than {MAX_BODY_BYTES // 1024} KiB",
    422: "Invalid fields; `errors` names each",
    429: "Over this key's rate limit; retry after `Retry-After` seconds",
    503: "A service behind the API is busy or unavailable; retry after `Retry-After` seconds",
}


def _problem(slug: str, title: str, status: int, detail: str, **more: Any) -> dict[str, Any]:
    return {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        **more,
    }


# What each error looks like (the detail varies with the request).
_PROBLEM_EXAMPLES = {
    400: _problem("bad-request", "Bad Request", 400, "the Stripe-Signature does not match"),
    401: _problem("unauthorized", "Unauthorized", 401, "the API key is not valid"),
    403: _problem(
        "forbidden",
        "Forbidden",
        403,
        "this needs a hub key or a business key; a session token may not do it",
    ),
    404: _problem("not-found", "Not found", 404, "no such booking"),
    409: _problem("conflict", "Conflict", 409, "cannot move a completed booking to confirmed"),
    412: _problem(
        "precondition-failed",
        "Precondition failed",
        412,
        "the booking is at version 3, not the one If-Match names; fetch it again",
    ),
    413: _problem(
        "request-entity-too-large",
        "Request Entity Too Large",
        413,
        f"the request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB",
    ),
    422: _problem(
        "validation-error",
        "Invalid request",
        422,
        "the request has invalid fields",
        errors={"starts_at": "must be in the future"},
    ),
    429: _problem(
        "rate-limited",
        "Too Many Requests",
        429,
        "this key is over its rate limit (40;w=4); retry in 1 s",
    ),
    503: _problem(
        "service-unavailable", "Service unavailable", 503, "a service is unavailable; retry"
    ),
}


def _header(description: str, *, required: bool = True, **schema: Any) -> dict[str, Any]:
    """A response header's entry in components.headers; an optional one leaves
    `required` out (OpenAPI's default)."""
    required_entry = {"required": True} if required else {}
    return {"description": description, **required_entry, "schema": schema}


_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": _header(
        "This request's id: yours when well-formed, otherwise a new one", type="string"
    ),
    "RateLimit-Limit": _header(
        "The size of this key's bucket (requests in a burst)", type="integer", minimum=1
    ),
    "RateLimit-Remaining": _header("Requests left in the bucket now", type="integer", minimum=0),
    "RateLimit-Reset": _header("Seconds until the bucket is full again", type="integer", minimum=0),
    "RateLimit-Policy": _header("The bucket as `<size>;w=<seconds to refill it>`", type="string"),
    "Retry-After": _header("Seconds after which a retry may succeed", type="integer", minimum=1),
    "ETag": _header(
        "The booking's `version`, quoted (a strong tag), for `If-Match`",
        type="string",
        pattern='^"[0-9]+"$',
    ),
    "WWW-Authenticate": _header("The Bearer scheme", type="string"),
    REPLAYED_HEADER: _header(
        "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
        required=False,
        type="string",
        enum=["true"],
    ),
}
_RATE_LIMIT_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
)


def _header_refs(names: Iterable[str]) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def operations_of(app: web.Application) -> list[Operation]:
    """Every operation the app serves, in registration order; an undescribed route is an
    error (so a new route cannot go undocumented)."""
    found: list[Operation] = []
    for resource in app.router.resources():
        if isinstance(resource, web.StaticResource):
            continue
        for route in resource:
            operation = operation_of(route.handler)
            if operation is not None:
                found.append(operation)
            elif resource.canonical not in NOT_DOCUMENTED:
                raise LookupError(
                    f"{route.method} {resource.canonical} is served but not in the route "
                    "table (gateway.contract); describe it there"
                )
    return found


class _Schemas:
    """Components from pydantic models: one JSON Schema per model and mode."""

    def __init__(self, operations: list[Operation]) -> None:
        wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
            (Problem, "serialization"): None
        }
        for op in operations:
            if op.body is not None:
                wanted[(op.body.model, "validation")] = None
            if op.query is not None:
                wanted[(op.query, "validation")] = None
            for reply in op.replies:
                if reply.model is not None:
                    wanted[(reply.model, "serialization")] = None
        refs, definitions = models_json_schema(list(wanted), ref_template=_REF)
        self.refs = refs
        self.components: dict[str, Any] = definitions.get("$defs", {})
        # Query models become parameters, not schemas of their own.
        self.query_models = {query for query, mode in wanted if mode == "validation"} & {
            op.query for op in operations if op.query is not None
        }

    def drop_query_models(self) -> None:
        for model in self.query_models:
            self.components.pop(self._name(model, "validation"), None)

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(self.refs[(model, mode)])

    def _name(self, model: type[BaseModel], mode: JsonSchemaMode) -> str:
        return str(self.refs[(model, mode)]["$ref"]).rsplit("/", 1)[1]

    def partial(self, model: type[BaseModel]) -> dict[str, Any]:
        """A PATCH body: any subset of the model's fields."""
        full = self._name(model, "validation")
        name = f"{model.__name__.removesuffix('Fields')}Patch"
        if name not in self.components:
            schema = copy.deepcopy(self.components[full])
            schema.pop("required", None)
            # Rules between fields hold for the merged document, not for the patch alone.
            for keyword in ("if", "then", "else"):
                schema.pop(keyword, None)
            schema["title"] = name
            schema["description"] = (
                f"Any of {full}'s fields; those sent replace the stored ones, and the "
                f"result must be a valid {full}."
            )
            self.components[name] = schema
        return {"$ref": _REF.format(model=name)}

    def query_parameters(self, model: type[BaseModel]) -> list[dict[str, Any]]:
        schema = self.components[self._name(model, "validation")]
        required = set(schema.get("required", ()))
        parameters = []
        for name, prop in schema["properties"].items():
            description = prop.get("description")
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": _without_null(prop),
            }
            if description:
                parameter["description"] = description
            parameters.append(parameter)
        return parameters


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is left out rather than null: drop the null alternative."""
    schema = {k: v for k, v in schema.items() if k not in ("default", "title", "description")}
    options = schema.get("anyOf")
    if options is not None:
        kept = [option for option in options if option.get("type") != "null"]
        schema.pop("anyOf")
        if len(kept) == 1:
            schema |= kept[0]
        else:
            schema["anyOf"] = kept
    return schema


def _examples(examples: dict[str, Any] | Any) -> dict[str, Any]:
    return {name: {"summary": name, "value": value} for name, value in examples.items()}


def _parameters(op: Operation, schemas: _Schemas) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": "An id; a malformed one names nothing (404)",
            "schema": {"type": "string", "format": "uuid"},
        }
        for name in op.path_ids
    ] + [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": "The secret from the link; a wrong or dead one is 404",
            "schema": {"type": "string"},
        }
        for name in op.path_secrets
    ]
    if KeyKind.HUB in op.key_kinds and op.needs_business:
        parameters.append(
            {
                "name": BUSINESS_HEADER,
                "in": "header",
                "required": False,
                "description": "With a hub key (required then): the business to act for",
                "schema": {"type": "string", "format": "uuid"},
            }
        )
    if op.idempotent:
        parameters.append(
            {
                "name": IDEMPOTENCY_HEADER,
                "in": "header",
                "required": False,
                "description": "Retry safely: the same key and body replays the first answer "
                "for 24 hours",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_KEY_LENGTH,
                    "pattern": IDEMPOTENCY_KEY_PATTERN,
                },
            }
        )
    for name, (description, required) in op.headers.items():
        parameters.append(
            {
                "name": name,
                "in": "header",
                "required": required,
                "description": description,
                "schema": {"type": "string"},
            }
        )
    if op.paged:
        parameters += [
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "`next_cursor` of the previous page",
                "schema": {"type": "string", "pattern": CURSOR_PATTERN},
            },
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": "Items per page",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_PAGE_SIZE,
                    "default": 20,
                },
            },
        ]
    if op.query is not None:
        parameters += schemas.query_parameters(op.query)
    return parameters


def _error_statuses(op: Operation) -> set[int]:
    statuses = set(op.errors)
    if op.key_kinds:
        statuses |= {401, 404, 422, 429, 503}
        if op.restricted:
            statuses.add(403)
    if op.may_conflict:
        statuses.add(409)
    if op.body is not None:
        statuses |= {413, 422}
    return statuses


def _responses(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    limited = ("X-Request-Id", *_RATE_LIMIT_HEADERS) if op.key_kinds else ("X-Request-Id",)
    responses: dict[str, Any] = {}
    for reply in op.replies:
        headers = limited + ((REPLAYED_HEADER,) if op.idempotent else ()) + reply.headers
        answer: dict[str, Any] = {
            "description": reply.description,
            "headers": _header_refs(headers),
        }
        if reply.model is not None:
            content: dict[str, Any] = {"schema": schemas.ref(reply.model, "serialization")}
            if reply.examples:
                content["examples"] = _examples(dict(reply.examples))
            answer["content"] = {reply.media_type: content}
        elif reply.media_type != "application/json":
            # A file (text/calendar): documented by its media type.
            answer["content"] = {reply.media_type: {"schema": {"type": "string"}}}
        responses[str(reply.status)] = answer
    for status in sorted(_error_statuses(op)):
        headers = ("X-Request-Id",) if status == 401 else limited
        if status == 401:
            headers += ("WWW-Authenticate",)
        if status in (429, 503):
            headers += ("Retry-After",)
        if op.idempotent and status in (404, 409, 422):
            headers += (REPLAYED_HEADER,)
        responses.setdefault(
            str(status),
            {
                "description": op.errors.get(status, _ERROR_DESCRIPTIONS.get(status))
                or HTTPStatus(status).phrase,
                "headers": _header_refs(headers),
                "content": {
                    _PROBLEM: {
                        "schema": schemas.ref(Problem, "serialization"),
                        "example": _PROBLEM_EXAMPLES.get(status)
                        or _problem("error", HTTPStatus(status).phrase, status, "..."),
                    }
                },
            },
        )
    return responses


def _operation(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    kinds = [kind.value for kind in KeyKind if kind in op.key_kinds]
    description = op.description
    if kinds:
        description = (description + "\n\n" if description else "") + (
            "**Keys:** " + ", ".join(f"{kind}" for kind in kinds) + "."
        )
    document: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "description": description,
        "tags": [op.tag],
        "x-key-kinds": kinds,
        "security": [{"bearerAuth": []}] if op.key_kinds else [],
        "parameters": _parameters(op, schemas),
        "responses": _responses(op, schemas),
    }
    if not document["parameters"]:
        del document["parameters"]
    if op.body is not None:
        schema = (
            schemas.partial(op.body.model)
            if op.body.partial
            else schemas.ref(op.body.model, "validation")
        )
        content: dict[str, Any] = {"schema": schema}
        if op.body.examples:
            content["examples"] = _examples(dict(op.body.examples))
        document["requestBody"] = {
            "required": op.body.required,
            "content": {"application/json": content},
        }
    return document


def build_document(app: web.Application) -> dict[str, Any]:
    operations = operations_of(app)
    schemas = _Schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    schemas.drop_query_models()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Calendence API",
            "version": "1.0.0",
            "description": DESCRIPTION,
        },
        "tags": [{"name": name, "description": about} for name, about in TAGS],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "headers": _HEADERS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A hub key (`cal_hub_...`), business key (`cal_biz_...`) "
                    "or session token (`cal_ses_...`)",
                }
            },
        },
    }
