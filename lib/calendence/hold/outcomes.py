"""One item's outcome in hold-service's batch calls, as the caller sees it."""

from __future__ import annotations

from calendence.errors import DomainError, InternalError, error_of_kind
from calendence.hold.v1 import hold_pb2


def failure_of(failure: hold_pb2.Failure, what: str) -> DomainError:
    """The domain error an item of a batch failed with (`what` names it when the kind
    is unknown to this version)."""
    error = error_of_kind(failure.kind, failure.detail, dict(failure.fields))
    return error if error is not None else InternalError(f"{what} failed")


def outcome_of(item: hold_pb2.PlaceHoldOutcome) -> hold_pb2.PlacedHold | DomainError:
    if item.HasField("hold"):
        return item.hold
    return failure_of(item.failure, "the hold could not be placed")
