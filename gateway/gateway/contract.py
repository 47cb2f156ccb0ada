"""The public API's route table: one entry per operation, the one source of truth.

Each `Operation` says what a route takes and answers: method, path, the key kinds that
may call it, the request body, query and page parameters with their schemas (the
pydantic models of calendence.schemas), and the answers with theirs. The gateway
registers its routes from these entries and checks every request against them before
the handler runs (key kind, business, path ids, page, query, body), and
`gateway.openapi` builds the OpenAPI document from the same entries. A route the
table does not describe fails the gateway's start (see `gateway.openapi`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiohttp import web
from calendence.principals import KeyKind
from calendence.schemas.common import parse_json
from pydantic import BaseModel

from gateway.auth import business_of, require_kind
from gateway.http_io import page_params, path_uuid, read_body
from gateway.idempotency import idempotent, is_idempotent
from gateway.middleware import Handler, public

Model = TypeVar("Model", bound=BaseModel)

# What the checks leave on the request for the handler.
BODY = "contract.body"
QUERY = "contract.query"
PAGE = "contract.page"
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")
# The name of examples taken from the public Bookings API page.
BOOKINGS_PAGE = "The Bookings API page's example"


@dataclass(frozen=True)
class Body:
    """A request body and its schema."""

    model: type[BaseModel]
    # False for bodies whose every field is optional: an empty body is `{}`.
    required: bool = True
    # False where the service behind the route validates (PATCH bodies, which are
    # merged into the stored document first): the gateway documents it only.
    checked: bool = True
    # PATCH: any subset of the model's fields, merged into the stored document.
    partial: bool = False
    examples: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A success answer: its status, schema (None: no body) and examples."""

    status: int
    model: type[BaseModel] | None
    description: str
    examples: Mapping[str, Any] = field(default_factory=dict)
    media_type: str = "application/json"
    # Response headers particular to this answer (names in the document's components).
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    # The operationId, a verb_noun name (`create_hold`, `list_bookings`): what a client
    # generated from the OpenAPI document calls the method.
    name: str
    summary: str
    tag: str
    # Who may call it; () is public (no key, or another proof such as a signature).
    key_kinds: tuple[KeyKind, ...]
    replies: tuple[Reply, ...]
    body: Body | None = None
    # Query parameters, validated as one document (unknown names are 422).
    query: type[BaseModel] | None = None
    # Takes `cursor` and `limit` and answers one page of a list.
    paged: bool = False
    # A hub key must name the business (Calendence-Business header); False where the
    # hub itself is the subject (its businesses) or the body may name it.
    needs_business: bool = True
    idempotent: bool = False
    # Conflict (409) is a possible answer; by default for every method but GET.
    conflicts: bool | None = None
    description: str = ""
    # Extra error answers particular to this route: status -> description.
    errors: Mapping[int, str] = field(default_factory=dict)
    # Header parameters particular to this route: name -> (description, required).
    headers: Mapping[str, tuple[str, bool]] = field(default_factory=dict)

    @functools.cached_property
    def path_ids(self) -> tuple[str, ...]:
        return tuple(p for p in _PATH_PARAMETER.findall(self.path) if not is_path_secret(p))

    @functools.cached_property
    def path_secrets(self) -> tuple[str, ...]:
        return tuple(p for p in _PATH_PARAMETER.findall(self.path) if is_path_secret(p))

    @property
    def may_conflict(self) -> bool:
        return self.method != "GET" if self.conflicts is None else self.conflicts

    @property
    def restricted(self) -> bool:
        """Some key kinds are refused (403)."""
        return bool(self.key_kinds) and set(self.key_kinds) != set(KeyKind)


@functools.cache
def _datetime_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The (alias) names of the model's fields that hold a time, as its schema says."""
    properties = model.model_json_schema(by_alias=True)["properties"]
    return tuple(
        name for name, schema in properties.items() if b"date-time" in orjson.dumps(schema)
    )


# An offset typed into a URL unencoded (`from=2027-03-28T00:00:00+00:00`) arrives with
# its `+` decoded as a space; a time never has a space there, so it is read back as `+`.
_SPACED_OFFSET = re.compile(r"^(\S+T[\d:.]+) (\d\d(?::?\d\d)?)$")
_PAGE_PARAMETERS = ("cursor", "limit")


def query_document(request: web.Request, operation: Operation) -> dict[str, str]:
    """The query parameters the operation's query model reads, as strings."""
    assert operation.query is not None
    query = {
        name: value
        for name, value in request.query.items()
        if not (operation.paged and name in _PAGE_PARAMETERS)
    }
    for name in _datetime_fields(operation.query):
        if name in query:
            query[name] = _SPACED_OFFSET.sub(r"\1+\2", query[name])
    return query


def is_path_secret(name: str) -> bool:
    """A path parameter that is a secret (`token`, `feed_token`), not an id: the handler
    checks it, and any text reaches it so that a wrong one gets the handler's answer."""
    return name == "token" or name.endswith("_token")


def _path_pattern(match: re.Match[str]) -> str:
    name = match[1]
    return f"{{{name}:[^/]+?}}" if is_path_secret(name) else f"{{{name}:[0-9A-Fa-f-]+}}"


def _checked(operation: Operation, handler: Handler) -> Handler:
    """`handler` behind the checks the table promises, in the order the API answers
    them: key kind (403), business (422), path ids (404), page, query, body (422)."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        if operation.key_kinds:
            if operation.needs_business:
                business_of(request, *operation.key_kinds)
            else:
                require_kind(request, *operation.key_kinds)
        for name in operation.path_ids:
            path_uuid(request, name)
        if operation.paged:
            request[PAGE] = page_params(request)
        if operation.query is not None:
            request[QUERY] = parse_json(
                operation.query, orjson.dumps(query_document(request, operation))
            )
        body = operation.body
        if body is not None and body.checked:
            if body.required:
                raw = await read_body(request)
            else:
                # No body at all is `{}`; whitespace alone is not JSON (422), as the
                # document, which allows no body or a JSON object, says.
                raw = await request.read() or b"{}"
            request[BODY] = parse_json(body.model, raw)
        return await handler(request)

    return checked


def validated_body(request: web.Request, model: type[Model]) -> Model:
    body = request[BODY]
    if not isinstance(body, model):
        raise TypeError(f"the route table checks this body as {type(body).__name__}")
    return body


def validated_query(request: web.Request, model: type[Model]) -> Model:
    query = request[QUERY]
    if not isinstance(query, model):
        raise TypeError(f"the route table checks this query as {type(query).__name__}")
    return query


def page_of_request(request: web.Request) -> tuple[str, int]:
    cursor, limit = request[PAGE]
    return str(cursor), int(limit)


HANDLER_OPERATION = "__operation__"


def operation_of(handler: object) -> Operation | None:
    found = getattr(handler, HANDLER_OPERATION, None)
    return found if isinstance(found, Operation) else None


def route(operation: Operation, handler: Handler) -> web.RouteDef:
    """The aiohttp route for `operation`, its handler behind the table's checks."""
    if operation.idempotent and not is_idempotent(handler):
        # Inside the checks, so a refused or malformed request never claims the key (as
        # Stripe does: only a request that started executing is kept for replay).
        handler = idempotent(handler)
    if is_idempotent(handler) != operation.idempotent:
        raise ValueError(f"{operation.method} {operation.path}: Idempotency-Key handling differs")
    wrapped = _checked(operation, handler)
    if not operation.key_kinds:
        wrapped = public(wrapped)
    setattr(wrapped, HANDLER_OPERATION, operation)
    kwargs: dict[str, Any] = {"allow_head": False} if operation.method == "GET" else {}
    # Ids are hex and dashes: so `/bookings/hold` is never a booking id (a wrong method
    # on it is 405, not "no such booking").
    pattern = _PATH_PARAMETER.sub(_path_pattern, operation.path)
    return web.route(operation.method, pattern, wrapped, **kwargs)
