"""Serving gRPC: request ids, domain errors mapped to status codes in one place, access
logs, every unary method also on a multiplexed stream, and a drain on SIGTERM."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc_health.v1 import health_pb2_grpc

from calendence.logs import (
    REQUEST_ID_METADATA_KEY,
    log_fields,
)
from calendence.rpc.channel import CHANNEL_OPTIONS
from calendence.rpc.handling import CallFailed, answer_call
from calendence.rpc.health import DependencyHealth
from calendence.rpc.multiplexing import HandlerRecorder, Multiplexer
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


def _mapped(method: str, inner: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def handle(request: Any, context: ServicerContext) -> Any:
        incoming = dict(context.invocation_metadata() or ())
        try:
            return await answer_call(
                method, inner, request, context, str(incoming.get(REQUEST_ID_METADATA_KEY) or "")
            )
        except CallFailed as failed:
            await context.abort(failed.code, failed.details, trailing_metadata=failed.trailing)

    return handle


# Each server's multiplexer, told to drain when its server is about to stop.
_multiplexers: weakref.WeakKeyDictionary[grpc.aio.Server, Multiplexer] = weakref.WeakKeyDictionary()


def build_server(
    register: Iterable[Callable[[grpc.aio.Server], None]], health: DependencyHealth, port: int
) -> grpc.aio.Server:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()], options=SERVER_OPTIONS)
    # What is registered is also served on the multiplexed stream (see `multiplexing`).
    handlers = HandlerRecorder(server)
    for add in register:
        add(handlers.server)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, handlers.server)
    multiplexer = Multiplexer(handlers.lookup)
    server.add_generic_rpc_handlers((multiplexer.rpc_handler(),))
    _multiplexers[server] = multiplexer
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
    multiplexer = _multiplexers.get(server)
    if multiplexer is not None:
        multiplexer.drain()
    await server.stop(grace_seconds)
