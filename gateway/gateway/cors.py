"""CORS for booking widgets: browsers calling /api/v1 with a session token.

Each business lists its widget's origins in `allowed_origins`; the list comes with the
key from booking-service and is cached with it, so checking costs no call.

- A preflight (OPTIONS) carries no Authorization header, so it cannot tell whose token
  the real request will bring: it is answered for any origin, with the methods the path
  has and the headers the API reads. It grants nothing by itself.
- The real answer carries Access-Control-Allow-Origin only when the caller is a session
  token whose business allows that origin. Business and hub keys are server secrets and
  never get it, so a page that embeds one cannot read the answers.
- A 401 carries it for any origin: it reveals nothing, and a widget must be able to see
  that its token expired.
"""

from __future__ import annotations

from aiohttp import web
from calendence.principals import KeyKind, Principal

from gateway.auth import PRINCIPAL
from gateway.problems import problem_from_http

ALLOWED_HEADERS = (
    "Authorization, Content-Type, Idempotency-Key, Calendence-Business, X-Request-Id, If-Match"
)
EXPOSED_HEADERS = (
    "X-Request-Id, Idempotent-Replayed, Retry-After, ETag, "
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy"
)
# How long a browser may reuse a preflight's answer.
PREFLIGHT_MAX_AGE_SECONDS = 600


def preflight(request: web.Request) -> web.Response:
    """OPTIONS on an /api/v1 path: 204 with the path's methods, or 404 for no such path."""
    error = request.match_info.http_exception
    if not isinstance(error, web.HTTPMethodNotAllowed):
        return problem_from_http(error if error is not None else web.HTTPNotFound())
    methods = ", ".join(sorted(error.allowed_methods))
    response = web.Response(status=204, headers={"Allow": methods})
    origin = request.headers.get("Origin")
    if origin and request.headers.get("Access-Control-Request-Method"):
        response.headers.update(
            {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": methods,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
                "Vary": "Origin",
            }
        )
    return response


def allows(principal: Principal | None, origin: str, status: int) -> bool:
    if principal is None:
        return status == 401
    return principal.kind is KeyKind.SESSION and origin in principal.allowed_origins


def decorate(request: web.Request, response: web.StreamResponse) -> None:
    """Let the page at Origin read this answer, when the caller allows that origin."""
    origin = request.headers.get("Origin")
    if not origin or "Access-Control-Allow-Origin" in response.headers:
        return
    response.headers.add("Vary", "Origin")
    if allows(request.get(PRINCIPAL), origin, response.status):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
