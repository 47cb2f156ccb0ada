"""A service's health answers, through the error-mapping interceptor every service runs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from calendence import rpc
from calendence.devstack.processes import free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc


async def _fine() -> None:
    return None


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    health = rpc.DependencyHealth({"postgres": _fine})
    port = free_port()
    server = rpc.build_server([], health, port)
    await server.start()
    await health.check_once()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as opened:
        yield opened
    await server.stop(None)


async def test_a_store_the_service_does_not_probe_is_not_found_and_no_error_is_logged(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    with (
        caplog.at_level(logging.INFO, logger="calendence.rpc"),
        pytest.raises(grpc.aio.AioRpcError) as raised,
    ):
        await stub.Check(health_pb2.HealthCheckRequest(service="redis"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_probed_store_that_answers_is_serving(channel: grpc.aio.Channel) -> None:
    assert await rpc.check_health(channel, "postgres")
    assert await rpc.check_health(channel)
