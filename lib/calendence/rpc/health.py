"""Health on the standard grpc.health.v1 service: reporting ours, checking another's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from calendence.cancellation import stop_if_cancelled
from calendence.logs import log_fields

log = logging.getLogger("calendence.rpc")


class DependencyHealth:
    """Reports the service and each of its stores on the standard gRPC health service.

    The overall service ("") is SERVING only while every store answers its probe;
    each store also has its own entry (e.g. "redis") so the gateway's /readyz can
    show a per-dependency breakdown.
    """

    def __init__(self, probes: Mapping[str, Callable[[], Awaitable[object]]]) -> None:
        self.servicer = HealthServicer()
        self._probes = dict(probes)
        self._task: asyncio.Task[None] | None = None

    async def check_once(self) -> bool:
        all_ok = True
        for name, probe in self._probes.items():
            try:
                await asyncio.wait_for(probe(), timeout=2.0)
                ok = True
            except Exception as error:  # a probe failing for any reason means not ready
                stop_if_cancelled(error)
                log.warning(
                    "dependency unreachable", extra=log_fields(dependency=name, error=repr(error))
                )
                ok = False
            all_ok = all_ok and ok
            await self.servicer.set(name, _status(ok))
        await self.servicer.set("", _status(all_ok))
        return all_ok

    def start(self, interval: float = 2.0) -> None:
        async def loop() -> None:
            while True:
                await self.check_once()
                await asyncio.sleep(interval)

        self._task = asyncio.get_running_loop().create_task(loop())

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.servicer.enter_graceful_shutdown()


def _status(ok: bool) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    return (
        health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
    )


async def check_health(channel: grpc.aio.Channel, service: str = "", timeout: float = 1.0) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.aio.AioRpcError:
        return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
