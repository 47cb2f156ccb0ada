"""A service's domain errors on the wire: the status code and detail every caller gets,
however it calls, through the handlers `calendence.rpc.build_server` wraps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from calendence import rpc
from calendence.devstack.processes import free_port
from calendence.errors import NotFound
from calendence.hold.v1 import hold_pb2, hold_pb2_grpc
from calendence.logs import REQUEST_ID_METADATA_KEY, request_id_var

RELEASE = "/calendence.hold.v1.HoldService/ReleaseHold"


class MissingHolds(hold_pb2_grpc.HoldServiceServicer):
    """Knows no hold; says which request asked."""

    async def ReleaseHold(
        self, request: hold_pb2.ReleaseHoldRequest, context: rpc.ServicerContext
    ) -> hold_pb2.ReleaseHoldResponse:
        raise NotFound(f"no hold {request.hold_id} (request {request_id_var.get()})")


async def _fine() -> None:
    return None


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    port = free_port()
    server = rpc.build_server(
        [
            lambda s: hold_pb2_grpc.add_HoldServiceServicer_to_server(
                MissingHolds(),  # type: ignore[abstract]  # only ReleaseHold is called
                s,
            )
        ],
        rpc.DependencyHealth({"redis": _fine}),
        port,
    )
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as opened:
        yield opened
    await server.stop(None)


async def test_a_domain_error_comes_back_to_a_service_as_the_same_error(
    channel: grpc.aio.Channel,
) -> None:
    stub = hold_pb2_grpc.HoldServiceStub(channel)
    with pytest.raises(NotFound, match="no hold h-1"):
        await rpc.unary(stub.ReleaseHold, hold_pb2.ReleaseHoldRequest(hold_id="h-1"))


async def test_a_caller_without_the_generated_stub_gets_the_mapped_status(
    channel: grpc.aio.Channel,
) -> None:
    # grpcurl and other generic clients reach the handler by name, not pre-registered.
    release = channel.unary_unary(
        RELEASE,
        request_serializer=hold_pb2.ReleaseHoldRequest.SerializeToString,
        response_deserializer=hold_pb2.ReleaseHoldResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await release(hold_pb2.ReleaseHoldRequest(hold_id="h-2"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no hold h-2" in (raised.value.details() or "")


async def test_the_handler_runs_with_the_callers_request_id(channel: grpc.aio.Channel) -> None:
    stub = hold_pb2_grpc.HoldServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ReleaseHold(
            hold_pb2.ReleaseHoldRequest(hold_id="h-3"),
            metadata=((REQUEST_ID_METADATA_KEY, "req-from-the-gateway"),),
            timeout=5,
        )
    assert "request req-from-the-gateway" in (raised.value.details() or "")
