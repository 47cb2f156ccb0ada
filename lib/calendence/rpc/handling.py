"""How every call is answered, however it arrived (a unary call or a frame on a
multiplexed stream): the one place where a domain error becomes a gRPC status."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from calendence.errors import DomainError, error_metadata, is_store_busy
from calendence.logs import access_log, log_fields, new_request_id, request_id_var

log = logging.getLogger("calendence.rpc")

# Outcomes that are the service's failure, always logged (a domain error such as a
# taken slot is the caller's answer, not ours).
_FAILED = frozenset({"UNAVAILABLE", "INTERNAL"})


class CallFailed(Exception):
    """How a call ends when it returns nothing: a status code, its details and the
    trailing metadata (a domain error's kind and fields)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing: Sequence[tuple[str, str | bytes]] = (),
    ) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details
        self.trailing = tuple(trailing)


async def answer_call(
    method: str, inner: Callable[..., Any], request: Any, context: Any, request_id: str
) -> Any:
    """Run one unary handler as every call is run, however it arrived (a unary call or a
    frame on a multiplexed stream): the caller's request id set for the logs, a domain
    error or a busy store turned into its status (raised as `CallFailed`), failures and
    sampled calls logged."""
    token = request_id_var.set(request_id or new_request_id())
    started = time.perf_counter()
    outcome = "OK"
    try:
        return await inner(request, context)
    except DomainError as error:
        outcome = error.status.name
        raise CallFailed(error.status, error.detail, error_metadata(error)) from None
    except asyncio.CancelledError:
        outcome = "CANCELLED"
        raise
    except CallFailed as failed:
        # The handler answered with a status of its own (the health service's NOT_FOUND
        # for a store it has not probed yet): that is its answer, no error.
        outcome = failed.code.name
        raise
    except grpc.aio.AbortError:
        code = context.code()
        outcome = code.name if isinstance(code, grpc.StatusCode) else "ABORTED"
        raise
    except Exception as error:
        if is_store_busy(error):
            # A full pool or an unreachable store: the caller may retry, it is no bug.
            outcome = "UNAVAILABLE"
            log.warning(
                "store busy or unreachable",
                extra=log_fields(method=method, error=repr(error)),
            )
            raise CallFailed(
                grpc.StatusCode.UNAVAILABLE, "a store is busy or unreachable"
            ) from None
        outcome = "INTERNAL"
        log.exception("unhandled error", extra=log_fields(method=method))
        raise CallFailed(grpc.StatusCode.INTERNAL, "internal error") from None
    finally:
        elapsed = time.perf_counter() - started
        if access_log.wanted(elapsed, outcome in _FAILED) and log.isEnabledFor(logging.INFO):
            elapsed_ms = round(elapsed * 1000, 3)
            log.info("rpc", extra=log_fields(method=method, status=outcome, ms=elapsed_ms))
        request_id_var.reset(token)
