"""Calling another service: the request id passed along, a failed status turned back
into the `DomainError` the callee raised."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeAlias, TypeVar, cast

import grpc

from calendence.errors import error_from_status
from calendence.logs import REQUEST_ID_METADATA_KEY, new_request_id, request_id_var

Req = TypeVar("Req")
Resp = TypeVar("Resp")

# The generated stubs type methods as grpc.UnaryUnaryMultiCallable; on an aio channel
# calling one returns an awaitable, which `unary` awaits.
if TYPE_CHECKING:
    UnaryMethod: TypeAlias = (
        grpc.UnaryUnaryMultiCallable[Req, Resp] | grpc.aio.UnaryUnaryMultiCallable[Req, Resp]
    )
else:  # the grpc classes are not subscriptable at run time
    UnaryMethod = grpc.UnaryUnaryMultiCallable


async def unary(
    method: UnaryMethod[Req, Resp],
    request: Req,
    *,
    timeout: float = 5.0,
    wait_for_ready: bool | None = None,
) -> Resp:
    """Call a unary gRPC method, passing the request id and mapping failures.

    `wait_for_ready=True` makes a call on a channel that is reconnecting (its peer
    just restarted) wait for it, up to `timeout`, instead of failing at once.
    """
    metadata = ((REQUEST_ID_METADATA_KEY, request_id_var.get() or new_request_id()),)
    try:
        call = cast(
            Awaitable[Resp],
            method(request, timeout=timeout, metadata=metadata, wait_for_ready=wait_for_ready),
        )
        return await call
    except grpc.aio.AioRpcError as error:
        trailing: dict[str, str | bytes] = dict(error.trailing_metadata() or ())  # type: ignore[arg-type]
        raise error_from_status(error.code(), error.details(), trailing) from None
