"""aiohttp middlewares: request id, access log and metrics, errors, authentication."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from calendence.errors import DomainError
from calendence.logs import log_fields, new_request_id, request_id_var

from gateway.appkeys import AUTHENTICATOR, NATS
from gateway.auth import BUSINESS_HEADER, bearer_token
from gateway.metrics import LATENCY, REQUESTS
from gateway.problems import problem_from_error, problem_from_http, problem_response

log = logging.getLogger("gateway.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID_HEADER = "X-Request-Id"
_WELL_FORMED_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def _route_label(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: request id in, X-Request-Id out, one access line and metrics per call."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _WELL_FORMED_ID.match(incoming) else new_request_id()
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    try:
        response = await handler(request)
    finally:
        request_id_var.reset(token)
    elapsed = time.perf_counter() - started
    response.headers[REQUEST_ID_HEADER] = request_id
    route, status = _route_label(request), str(response.status)
    REQUESTS.labels(route, request.method, status).inc()
    LATENCY.labels(route, request.method, status).observe(elapsed)
    if response.status >= 500 or log.isEnabledFor(logging.DEBUG):
        log.info(
            "request",
            extra=log_fields(
                request_id=request_id,
                method=request.method,
                route=route,
                status=response.status,
                ms=round(elapsed * 1000, 3),
            ),
        )
    return response


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as problem+json; nothing internal leaks into an answer."""
    try:
        return await handler(request)
    except DomainError as error:
        return problem_from_error(error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return problem_from_http(error)
    except Exception:
        log.exception("unhandled error")
        return problem_response(500, "something went wrong on our side; it has been logged")


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/v1/") or request.method == "OPTIONS":
        return await handler(request)
    route = request.match_info.route
    if route is not None and getattr(route.handler, "public", False):
        return await handler(request)
    token = bearer_token(request)
    business = request.headers.get(BUSINESS_HEADER, "").strip()
    authenticator = request.app[AUTHENTICATOR]
    events_link = request.app[NATS]
    authenticator.follow_revocation_link(
        events_link.is_connected, int(events_link.stats["reconnects"])
    )
    request["principal"] = await authenticator.authenticate(token, business)
    return await handler(request)


def public(handler: Handler) -> Handler:
    """Mark an /api/v1 handler that authenticates by other means (e.g. a signature)."""
    handler.public = True  # type: ignore[attr-defined]
    return handler


MIDDLEWARES = [observe, problems, authenticate]
