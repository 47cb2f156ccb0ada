"""The foundation: health, readiness, metrics, errors, and the request id."""

from __future__ import annotations

import json
import re
import time
import uuid

from calendence.devstack.stack import LocalStack

from tests.api import Api, Tenant


async def test_healthz_answers_while_the_process_lives(api: Api) -> None:
    answer = await api.get("/healthz")
    assert answer.status == 200
    assert answer.body == {"status": "alive"}


async def test_readyz_lists_every_service_and_store_as_ok(api: Api) -> None:
    answer = await api.get("/readyz")
    assert answer.status == 200
    assert answer.body["status"] == "ready"
    assert answer.body["dependencies"] == {
        name: "ok"
        for name in (
            "hold-service",
            "hold-service.redis",
            "hold-service.nats",
            "booking-service",
            "booking-service.postgres",
            "booking-service.nats",
            "notify-service",
            "notify-service.postgres",
            "notify-service.nats",
            "gateway.nats",
            "gateway.redis",
        )
    }


async def test_metrics_count_requests_by_route_and_status(api: Api) -> None:
    await api.get("/healthz")
    answer = await api.get("/metrics")
    assert answer.status == 200
    assert (
        'calendence_http_requests_total{method="GET",route="/healthz",status="200"}' in answer.body
    )
    assert "calendence_http_request_duration_seconds_bucket" in answer.body


async def test_metrics_show_the_garbage_collectors_pauses(api: Api) -> None:
    # Enough requests that the collector's youngest generation has run.
    for _ in range(50):
        await api.get("/healthz")
    answer = await api.get("/metrics")
    count = re.search(r'calendence_gc_pause_seconds_count\{generation="0"\} (\S+)', answer.body)
    assert count is not None, answer.body
    assert float(count.group(1)) > 0


async def test_every_answer_carries_a_request_id(api: Api) -> None:
    answer = await api.get("/healthz")
    assert len(answer.headers["X-Request-Id"]) >= 16


async def test_a_well_formed_incoming_request_id_is_kept(api: Api) -> None:
    answer = await api.get("/healthz", headers={"X-Request-Id": "client-trace-12345"})
    assert answer.headers["X-Request-Id"] == "client-trace-12345"


async def test_the_request_id_reaches_the_service_logs(
    api: Api, stack: LocalStack, tenant: Tenant
) -> None:
    request_id = f"trace-{time.time_ns()}"
    answer = await api.get(
        "/api/v1/locations", tenant.business_key, headers={"X-Request-Id": request_id}
    )
    assert answer.status == 200
    lines = [
        json.loads(line)
        for line in (stack.state_dir / "logs" / "booking-service.log").read_text().splitlines()
        if request_id in line
    ]
    assert any(
        line["msg"] == "rpc"
        and line["request_id"] == request_id
        and line["method"].endswith("/ListResources")
        for line in lines
    )


async def test_unknown_route_is_problem_json_404(api: Api) -> None:
    answer = await api.get("/nope")
    assert answer.status == 404
    assert answer.content_type == "application/problem+json"
    assert answer.body["status"] == 404


async def test_gateway_answers_503_problem_when_a_service_is_down(
    api: Api, stack: LocalStack, tenant: Tenant
) -> None:
    token = await tenant.session_token()
    stack.services["hold-service"].stop()
    try:
        hold = await api.post(
            "/api/v1/bookings/hold",
            token,
            {
                "service_id": str(uuid.uuid4()),
                "location_id": str(uuid.uuid4()),
                "starts_at": "2030-01-01T10:00:00+00:00",
            },
        )
        ready = await api.get("/readyz")
    finally:
        stack.start_service("hold-service")
        stack.wait_until_ready()
    assert hold.status == 503
    assert hold.content_type == "application/problem+json"
    assert "Traceback" not in json.dumps(hold.body)
    assert "127.0.0.1" not in json.dumps(hold.body)
    assert ready.status == 503
    assert ready.body["dependencies"]["hold-service"] == "unavailable"
    assert ready.body["dependencies"]["booking-service"] == "ok"
