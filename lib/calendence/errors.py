"""The platform's domain errors, and their one mapping to and from gRPC status codes.

Services raise these; `calendence.rpc` turns them into gRPC statuses on the way out and
back into the same exceptions on the client side, and the gateway maps them to HTTP
problem+json in `gateway.problems`. Nothing else decides what an error code means.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
import grpc
import orjson
import redis.exceptions
from grpc import StatusCode


class DomainError(Exception):
    """Base of every error a caller is meant to see. A kind names its gRPC status and
    its problem title where it is declared: `class NotFound(DomainError, status=...,
    title=...)`; a kind that names neither keeps its parent's."""

    status: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    title = "Error"

    def __init_subclass__(
        cls, *, status: grpc.StatusCode | None = None, title: str | None = None
    ) -> None:
        super().__init_subclass__()
        cls.status = status or cls.status
        cls.title = title or cls.title

    def __init__(self, detail: str, *, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields: dict[str, str] = dict(fields or {})


class InvalidInput(DomainError, status=StatusCode.INVALID_ARGUMENT, title="Invalid request"):
    """The request names something impossible: per-field reasons in `fields`."""


class NotFound(DomainError, status=StatusCode.NOT_FOUND, title="Not found"):
    """What the request names does not exist, or is not the caller's to see."""


class Conflict(DomainError, status=StatusCode.FAILED_PRECONDITION, title="Conflict"):
    """The request is valid but clashes with the current state (a slot, a transition)."""


class HoldConflict(Conflict, title="Slot unavailable"):
    """The slot is held or booked by someone else."""


class PreconditionFailed(DomainError, status=StatusCode.ABORTED, title="Precondition failed"):
    """The caller's condition (If-Match) does not hold: the resource changed meanwhile."""


class Unauthenticated(DomainError, status=StatusCode.UNAUTHENTICATED, title="Unauthorized"):
    """No key, or one that is unknown, revoked or expired."""


class Forbidden(DomainError, status=StatusCode.PERMISSION_DENIED, title="Forbidden"):
    """The key is valid but its kind may not do this."""


class Unavailable(DomainError, status=StatusCode.UNAVAILABLE, title="Service unavailable"):
    """A service or store is busy or unreachable: try again shortly."""


class InternalError(DomainError, status=StatusCode.INTERNAL, title="Internal error"):
    """A bug on our side; the caller can do nothing about it but report it."""


# Failures of a store that say "busy or unreachable, try again shortly", not "bug": a
# pool with no free connection within its wait (redis-py raises ConnectionError, asyncpg
# TimeoutError), a refused or dropped connection, a server that is starting or full.
# A Redis Cluster says so too while a primary is failing over to its replica: its slots
# are down (CLUSTERDOWN, or no node serves them), being moved (TRYAGAIN), or the node
# asked has just become a replica (READONLY).
# Services answer them UNAVAILABLE and the gateway 503 with Retry-After, never 500.
STORE_BUSY_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.SlotNotCoveredError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InsufficientResourcesError,
    ConnectionError,
    TimeoutError,
)


def is_store_busy(error: BaseException) -> bool:
    """Whether `error` says "busy or unreachable, try again shortly" (STORE_BUSY_ERRORS), or is
    Redis's BUSY reply (a script running past its time limit), MASTERDOWN reply or
    NOREPLICAS reply (a primary with fewer replicas than `min-replicas-to-write` refusing
    writes), which redis-py raises as a plain ResponseError."""
    if isinstance(error, STORE_BUSY_ERRORS):
        return True
    return isinstance(error, redis.exceptions.ResponseError) and str(error).startswith(
        ("BUSY ", "MASTERDOWN ", "NOREPLICAS ")
    )


ERROR_TYPES: tuple[type[DomainError], ...] = (
    InvalidInput,
    NotFound,
    HoldConflict,
    Conflict,
    PreconditionFailed,
    Unauthenticated,
    Forbidden,
    Unavailable,
    InternalError,
)

# Trailing metadata that carries what a status code alone cannot: the exact class
# (HoldConflict vs Conflict) and the per-field reasons.
ERROR_METADATA_KEY = "calendence-error-bin"


def error_metadata(error: DomainError) -> tuple[tuple[str, bytes]]:
    payload = orjson.dumps({"kind": error_kind(error), "fields": error.fields})
    return ((ERROR_METADATA_KEY, payload),)


_TYPES_BY_KIND = {cls.__name__: cls for cls in ERROR_TYPES}


def error_kind(error: DomainError) -> str:
    """What names the error's class across the wire (see `error_of_kind`)."""
    return type(error).__name__


def error_of_kind(kind: str, detail: str, fields: Mapping[str, str]) -> DomainError | None:
    """The domain error a peer named by `error_kind`; None for a kind it does not know."""
    cls = _TYPES_BY_KIND.get(kind)
    return cls(detail or cls.title, fields=fields) if cls is not None else None


def error_from_status(
    code: grpc.StatusCode, details: str | None, trailing: Mapping[str, str | bytes]
) -> DomainError:
    """Rebuild the domain error a peer raised; other failures become Unavailable.

    Only a peer's own domain errors keep their details: what the gRPC runtime says
    (addresses, connection states) must never reach an API answer.
    """
    raw = trailing.get(ERROR_METADATA_KEY)
    if isinstance(raw, bytes):
        payload = orjson.loads(raw)
        error = error_of_kind(str(payload.get("kind")), details or "", payload.get("fields") or {})
        if error is not None:
            return error
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        return InternalError("something went wrong on our side; it has been logged")
    # UNAVAILABLE, DEADLINE_EXCEEDED...: the caller can only retry later.
    return Unavailable("a service this request needs is unavailable; try again shortly")
