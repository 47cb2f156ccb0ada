"""RFC 9457 problem details: the one place errors become HTTP answers."""

from __future__ import annotations

from http import HTTPStatus

import orjson
from aiohttp import web
from calendence.errors import (
    Conflict,
    DomainError,
    Forbidden,
    HoldConflict,
    InternalError,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Unauthenticated,
    Unavailable,
)

PROBLEM_TYPE_BASE = "https://calendence.com/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
RETRY_UNAVAILABLE_AFTER_SECONDS = 1

# The first matching class wins, so subclasses come before their bases.
_HTTP_STATUS: tuple[tuple[type[DomainError], int, str], ...] = (
    (InvalidInput, 422, "validation-error"),
    (NotFound, 404, "not-found"),
    (HoldConflict, 409, "slot-unavailable"),
    (Conflict, 409, "conflict"),
    (PreconditionFailed, 412, "precondition-failed"),
    (Unauthenticated, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (Unavailable, 503, "service-unavailable"),
    (InternalError, 500, "internal-error"),
)


def status_of(error: DomainError) -> tuple[int, str]:
    for cls, status, slug in _HTTP_STATUS:
        if isinstance(error, cls):
            return status, slug
    return 500, "internal-error"


INTERNAL_ERROR_DETAIL = "something went wrong on our side; it has been logged"


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    slug: str | None = None,
    errors: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, object] | None = None,
) -> web.Response:
    phrase = HTTPStatus(status).phrase
    if status == 500 and slug is None:
        # Every 500 alike, whichever layer caught the bug (a service's InternalError
        # or the gateway's own): one problem type to look for.
        slug, title = "internal-error", title or InternalError.title
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + (slug or phrase.lower().replace(" ", "-")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    # RFC 9457 extension members: more about this kind of problem.
    body.update(extensions or {})
    response = web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="calendence"'
    if status == 503:
        # Overload and outages pass within seconds; tell clients when to come back.
        response.headers.setdefault("Retry-After", str(RETRY_UNAVAILABLE_AFTER_SECONDS))
    return response


def problem_from_error(error: DomainError) -> web.Response:
    status, slug = status_of(error)
    return problem_response(
        status, error.detail, title=error.title, slug=slug, errors=error.fields or None
    )


def problem_from_http(error: web.HTTPException) -> web.Response:
    details = {
        404: "no such route",
        405: "this method is not allowed on this route",
        413: "the request body is larger than 1 MiB",
    }
    return problem_response(
        error.status,
        details.get(error.status, error.reason),
        headers={k: v for k, v in error.headers.items() if k.lower() == "allow"},
    )
