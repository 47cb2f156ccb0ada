"""Liveness, readiness with a per-dependency breakdown, and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import orjson
from aiohttp import web
from calendence import rpc
from calendence.schemas.common import Answer
from calendence.schemas.problems import Problem
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field

from gateway.appkeys import DOWNSTREAM, NATS, REDIS
from gateway.contract import Operation, Reply, route
from gateway.downstream import SERVICE_DEPENDENCIES
from gateway.metrics import REGISTRY
from gateway.problems import PROBLEM_CONTENT_TYPE, problem_response

TAG = "Health"


class Liveness(Answer):
    status: Literal["alive"]


Dependencies = Annotated[
    dict[str, Literal["ok", "unavailable"]],
    Field(description="Each service and store behind the gateway, e.g. `booking-service.postgres`"),
]


class Readiness(Answer):
    status: Literal["ready"]
    dependencies: Dependencies


class NotReady(Problem):
    """A problem document naming, in `dependencies`, what is unavailable."""

    dependencies: Dependencies


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    downstream = request.app[DOWNSTREAM]
    checks: dict[str, asyncio.Future[bool]] = {}
    for service, stores in SERVICE_DEPENDENCIES.items():
        channel = downstream.channels[service]
        checks[service] = asyncio.ensure_future(rpc.check_health(channel))
        for store in stores:
            checks[f"{service}.{store}"] = asyncio.ensure_future(rpc.check_health(channel, store))
    await asyncio.gather(*checks.values())
    dependencies = {
        name: ("ok" if check.result() else "unavailable") for name, check in checks.items()
    }
    dependencies["gateway.nats"] = "ok" if request.app[NATS].is_connected else "unavailable"
    try:
        await asyncio.wait_for(request.app[REDIS].ping(), timeout=1)
        dependencies["gateway.redis"] = "ok"
    except Exception:  # any failure to answer a ping is "not ready"
        dependencies["gateway.redis"] = "unavailable"
    down = sorted(name for name, state in dependencies.items() if state != "ok")
    if down:
        return problem_response(
            503,
            f"not ready: {', '.join(down)} unavailable",
            slug="not-ready",
            extensions={"dependencies": dependencies},
        )
    return web.Response(
        body=orjson.dumps({"status": "ready", "dependencies": dependencies}),
        content_type="application/json",
    )


async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest(REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


routes = [
    route(
        Operation(
            "GET",
            "/healthz",
            name="check_liveness",
            summary="Liveness",
            tag=TAG,
            key_kinds=(),
            description="The gateway process answers; nothing behind it is asked.",
            replies=(Reply(200, Liveness, "Alive"),),
        ),
        healthz,
    ),
    route(
        Operation(
            "GET",
            "/readyz",
            name="check_readiness",
            summary="Readiness, per dependency",
            tag=TAG,
            key_kinds=(),
            description="200 when every service and store behind the gateway answers; 503 "
            "(a problem listing each dependency) when any does not.",
            replies=(
                Reply(200, Readiness, "Ready"),
                Reply(
                    503,
                    NotReady,
                    "Something behind the gateway is unavailable",
                    media_type=PROBLEM_CONTENT_TYPE,
                ),
            ),
        ),
        readyz,
    ),
]
# Prometheus' text format for operators' scrapers; not part of the public API (and so
# not in the OpenAPI document): an ingress should not expose it.
operator_routes = [web.get("/metrics", metrics)]
