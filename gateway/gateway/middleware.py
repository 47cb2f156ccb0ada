"""aiohttp middlewares: request id, access log and metrics; CORS and rate-limit headers;
errors; authentication and rate limits."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from calendence.errors import DomainError, InvalidInput, NotFound, Unavailable, is_store_busy
from calendence.logs import access_log, log_fields, new_request_id, request_id_var
from calendence.principals import Principal

from gateway import cors
from gateway.appkeys import AUTHENTICATOR, NATS, SETTINGS
from gateway.auth import BUSINESS_HEADER, PRINCIPAL, bearer_token
from gateway.delivery import deliver
from gateway.metrics import count_request
from gateway.problems import problem_from_error, problem_from_http, problem_response
from gateway.rate_limits import RATE_LIMIT, RATE_LIMITER

log = logging.getLogger("gateway.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID_HEADER = "X-Request-Id"
API_PREFIX = "/api/v1/"
# Instead of aiohttp's, which names the Python and aiohttp versions.
SERVER_NAME = "calendence"
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
    response.headers["Server"] = SERVER_NAME
    route = _route_label(request)
    count_request(route, request.method, response.status, elapsed)
    if access_log.wanted(elapsed, response.status >= 500) and log.isEnabledFor(logging.INFO):
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
async def cors_and_rate_limit_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers CORS preflights; adds the CORS and rate-limit headers to every answer
    (errors included: they pass through `problems` below first)."""
    api = request.path.startswith(API_PREFIX)
    if api and request.method == "OPTIONS":
        return cors.preflight(request)
    response = await handler(request)
    decision = request.get(RATE_LIMIT)
    if decision is not None:
        response.headers.update(decision.headers())
    if api:
        cors.decorate(request, response)
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
    except Exception as error:
        if not is_store_busy(error):
            log.exception("unhandled error")
            return problem_response(500, "something went wrong on our side; it has been logged")
        # A full pool or an unreachable store: the client may retry; no bug to log loudly.
        log.warning("store busy or unreachable: %r", error)
        return problem_from_error(Unavailable("the service is busy; try again shortly"))


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who is calling, then whether their key's bucket has a token left."""
    if not request.path.startswith(API_PREFIX) or request.method == "OPTIONS":
        return await handler(request)
    route = request.match_info.route
    if route is not None and getattr(route.handler, "public", False):
        return await handler(request)
    try:
        principal = await _principal(request)
    except RateLimited as limited:
        return limited.answer
    except DomainError:
        # No such route, or not this method: that answer wins over the key's trouble
        # (nothing would have run anyway).
        unmatched = request.match_info.http_exception
        if unmatched is not None:
            raise unmatched from None
        raise
    request[PRINCIPAL] = principal
    refused = await _rate_limited(request, principal)
    if refused is not None:
        return refused
    return await handler(request)


# What aiohttp decodes; any other Content-Encoding would reach handlers still encoded.
_DECODED_ENCODINGS = frozenset({"", "identity", "gzip", "deflate"})
# "Client Closed Request" (nginx's code): what /metrics counts for a request whose client
# left before its body arrived. No answer is sent; it is the client's doing, not a 5xx.
CLIENT_CLOSED_REQUEST = 499


@web.middleware
async def read_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The whole body, read before any handler runs and within the body timeout.

    Handlers then read it from memory. A client that announces a body and stalls gets
    408, a body that its Content-Encoding does not decode 400, an encoding we do not
    decode 415; each closes the connection, as the rest of the body cannot be trusted.
    """
    if not request.body_exists:
        return await handler(request)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in _DECODED_ENCODINGS:
        detail = "the body's Content-Encoding is not supported; send it as is, gzip or deflate"
        refusal = problem_response(415, detail, headers={"Accept-Encoding": "gzip, deflate"})
        return _without_the_rest(request, refusal)
    seconds = request.app[SETTINGS].request_body_timeout_seconds
    try:
        if request.content.is_eof():  # all here already (the usual case): no timer needed
            await request.read()
        else:
            async with asyncio.timeout(seconds):
                await request.read()
    except TimeoutError:
        refusal = problem_response(408, f"the body did not arrive within {seconds:g} s")
        return _without_the_rest(request, refusal)
    except RequestPayloadError:
        refusal = problem_response(400, f"the body is not valid {encoding or 'HTTP'} data")
        return _without_the_rest(request, refusal)
    except ConnectionResetError:
        log.info(
            "client left before sending the whole body",
            extra=log_fields(method=request.method, route=_route_label(request)),
        )
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    return await handler(request)


def _without_the_rest(request: web.Request, refusal: web.Response) -> web.Response:
    """Answer without reading the rest of the body, then close the connection.

    Left alone, aiohttp would keep the connection up to 10 s after the answer to read
    the rest (which may never come), and log a body that does not decode a second
    time, with a traceback.
    """
    request.protocol.close()  # whatever else arrives is dropped
    request.content.feed_eof()  # and nothing is left to read after the answer
    refusal.force_close()
    return refusal


class RateLimited(Exception):
    def __init__(self, answer: web.Response) -> None:
        super().__init__("rate limited")
        self.answer = answer


async def _principal(request: web.Request) -> Principal:
    token = bearer_token(request)
    header = request.headers.get(BUSINESS_HEADER)
    business = header.strip() if header is not None else ""
    authenticator = request.app[AUTHENTICATOR]
    events_link = request.app[NATS]
    authenticator.follow_revocation_link(
        events_link.is_connected, int(events_link.stats["reconnects"])
    )
    try:
        if header is not None and not business:
            raise InvalidInput(
                f"the {BUSINESS_HEADER} header is empty", fields={BUSINESS_HEADER: "must be a UUID"}
            )
        return await authenticator.authenticate(token, business)
    except (NotFound, InvalidInput):
        if header is None:
            raise
        # A good key naming a business it may not act for (or a malformed one): the key
        # still pays for the request, so a hub key cannot send unthrottled lookups.
        refused = await _rate_limited(request, await authenticator.authenticate(token, ""))
        if refused is not None:
            raise RateLimited(refused) from None
        raise


async def _rate_limited(request: web.Request, principal: Principal) -> web.Response | None:
    """Take a token from the key's bucket: the 429 answer when it had none left."""
    decision = await request.app[RATE_LIMITER].take(principal)
    request[RATE_LIMIT] = decision
    if decision.allowed:
        return None
    seconds = decision.retry_after_seconds
    return problem_response(
        429,
        f"this key is over its rate limit ({decision.bucket.policy}); retry in {seconds} s",
        slug="rate-limited",
        headers={"Retry-After": str(seconds)},
    )


def public(handler: Handler) -> Handler:
    """Mark an /api/v1 handler that authenticates by other means (e.g. a signature)."""
    handler.public = True  # type: ignore[attr-defined]
    return handler


# `deliver` outermost: it sends the finished answer itself (see gateway.delivery). The
# body is read before authentication: aiohttp would read (and discard) it after a
# refusal anyway, and a stalled or undecodable one is then answered the same for all.
MIDDLEWARES = [deliver, observe, cors_and_rate_limit_headers, problems, read_body, authenticate]
