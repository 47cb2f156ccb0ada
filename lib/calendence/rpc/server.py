"""Serving gRPC: request ids, domain errors mapped to status codes in one place, access
logs, and a drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc_health.v1 import health_pb2_grpc

from calendence.errors import DomainError, error_metadata, is_store_busy
from calendence.logs import (
    REQUEST_ID_METADATA_KEY,
    access_log,
    log_fields,
    new_request_id,
    request_id_var,
)
from calendence.rpc.channel import CHANNEL_OPTIONS
from calendence.rpc.health import DependencyHealth
from calendence.rpc.shutdown import wait_for_shutdown_signal

log = logging.getLogger("calendence.rpc")

# Servers close connections after a while so clients re-resolve and find new replicas.
SERVER_OPTIONS = [
    *CHANNEL_OPTIONS,
    ("grpc.max_connection_age_ms", 300_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
]

if TYPE_CHECKING:
    ServicerContext: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:  # the grpc classes are not subscriptable at run time
    ServicerContext = grpc.aio.ServicerContext
    Handler = grpc.RpcMethodHandler


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Sets the request id for each call and maps domain errors to status codes."""

    def __init__(self) -> None:
        self._wrapped: dict[str, Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped = grpc.unary_unary_rpc_method_handler(
            _mapped(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = wrapped
        return wrapped


# Outcomes that are the service's failure, always logged (a domain error such as a
# taken slot is the caller's answer, not ours).
_FAILED = frozenset({"UNAVAILABLE", "INTERNAL"})


def _mapped(method: str, inner: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def handle(request: Any, context: ServicerContext) -> Any:
        incoming = dict(context.invocation_metadata() or ())
        token = request_id_var.set(str(incoming.get(REQUEST_ID_METADATA_KEY) or new_request_id()))
        started = time.perf_counter()
        outcome = "OK"
        try:
            return await inner(request, context)
        except DomainError as error:
            outcome = error.status.name
            await context.abort(error.status, error.detail, trailing_metadata=error_metadata(error))
        except asyncio.CancelledError:
            outcome = "CANCELLED"
            raise
        except grpc.aio.AbortError:
            # The handler answered with a status of its own (the health service's
            # NOT_FOUND for a store it has not probed yet): that is its answer, no error.
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
                await context.abort(grpc.StatusCode.UNAVAILABLE, "a store is busy or unreachable")
            outcome = "INTERNAL"
            log.exception("unhandled error", extra=log_fields(method=method))
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        finally:
            elapsed = time.perf_counter() - started
            if access_log.wanted(elapsed, outcome in _FAILED) and log.isEnabledFor(logging.INFO):
                elapsed_ms = round(elapsed * 1000, 3)
                log.info("rpc", extra=log_fields(method=method, status=outcome, ms=elapsed_ms))
            request_id_var.reset(token)

    return handle


def build_server(
    register: Iterable[Callable[[grpc.aio.Server], None]], health: DependencyHealth, port: int
) -> grpc.aio.Server:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()], options=SERVER_OPTIONS)
    for add in register:
        add(server)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    server.add_insecure_port(f"0.0.0.0:{port}")
    return server


async def serve_until_signal(
    server: grpc.aio.Server, health: DependencyHealth, grace_seconds: float
) -> None:
    """Serve until SIGTERM/SIGINT, then drain: health first, in-flight calls next."""
    await server.start()
    await health.check_once()
    health.start()
    log.info("serving")
    await wait_for_shutdown_signal()
    log.info("shutting down", extra=log_fields(grace_seconds=grace_seconds))
    # NOT_SERVING first, so the gateway's /readyz and load balancers stop sending work.
    await health.shutdown()
    await server.stop(grace_seconds)
