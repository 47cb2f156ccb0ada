"""gRPC plumbing every service shares, one module per job.

- `channel`: client channels and the options both ends share; `open_channel` sends
  unary calls on long-lived streams (`multiplexed_channel`), to listed replicas one
  call at a time in turn (`replica_channels`).
- `client`: `unary` passes the request id along and turns a failed status back into the
  same `DomainError`, so a service's code never sees `AioRpcError`.
- `handling`: how every call is answered, however it arrived: a raised `DomainError`
  becomes its status code (with the details in trailing metadata), the caller's request
  id is set for the logs.
- `server`: `ErrorMappingInterceptor` answers unary calls through `handling`;
  `build_server` also serves every unary method on the multiplexed stream
  (`multiplexing`); `serve_until_signal` serves and drains.
- `health`: each service's and each store's status on grpc.health.v1.
- `shutdown`: waiting for SIGTERM/SIGINT, with start-up objects frozen first.

Connecting to the stores at start-up is `calendence.store_startup`.
"""

from calendence.rpc.channel import CLIENT_OPTIONS, open_channel, replica_targets
from calendence.rpc.client import UnaryMethod, unary
from calendence.rpc.health import DependencyHealth, check_health
from calendence.rpc.server import (
    SERVER_OPTIONS,
    ErrorMappingInterceptor,
    ServicerContext,
    build_server,
    serve_until_signal,
)
from calendence.rpc.shutdown import freeze_startup_objects, wait_for_shutdown_signal

__all__ = [
    "CLIENT_OPTIONS",
    "SERVER_OPTIONS",
    "DependencyHealth",
    "ErrorMappingInterceptor",
    "ServicerContext",
    "UnaryMethod",
    "build_server",
    "check_health",
    "freeze_startup_objects",
    "open_channel",
    "replica_targets",
    "serve_until_signal",
    "unary",
    "wait_for_shutdown_signal",
]
