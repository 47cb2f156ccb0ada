"""Every answer carries X-Request-Id, every error is problem+json, and no answer shows a
stack trace or an internal address, whatever fails: routing, size, a service behind."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from calendence.devstack.processes import free_port
from calendence.devstack.stack import LocalStack

from tests.api import Answer, Api, Tenant
from tests.test_keys import replica

PROBLEM = "application/problem+json"
REQUEST_ID = "X-Request-Id"


def assert_problem(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status, (answer.status, answer.body)
    assert answer.content_type == PROBLEM
    assert answer.headers[REQUEST_ID]
    body: dict[str, Any] = answer.body
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= body.keys()
    return body


async def test_an_unknown_route_is_a_404_problem(api: Api, tenant: Tenant) -> None:
    assert_problem(await api.get("/api/v1/nothing-here", tenant.business_key), 404)


async def test_an_unknown_route_without_a_key_is_a_404_problem(api: Api) -> None:
    assert_problem(await api.get("/api/v1/nothing-here"), 404)


async def test_a_wrong_method_is_a_405_problem_naming_the_allowed_ones(
    api: Api, tenant: Tenant
) -> None:
    answer = await api.call("PUT", "/api/v1/bookings/hold", tenant.business_key, json={})
    assert_problem(answer, 405)
    assert answer.headers["Allow"] == "POST"


async def test_a_wrong_method_on_a_word_that_is_no_id_is_405_not_404(
    api: Api, tenant: Tenant
) -> None:
    # `/bookings/hold` is not the booking with id "hold".
    answer = await api.delete("/api/v1/bookings/hold", tenant.business_key)
    assert_problem(answer, 405)


async def test_a_body_over_one_mebibyte_is_a_413_problem(api: Api, tenant: Tenant) -> None:
    body = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    answer = await api.post("/api/v1/locations", tenant.business_key, data=body)
    assert_problem(answer, 413)


async def test_a_well_formed_request_id_comes_back_on_an_error(api: Api) -> None:
    mine = f"trace-{uuid.uuid4().hex}"
    answer = await api.get("/api/v1/nothing-here", headers={REQUEST_ID: mine})
    assert answer.headers[REQUEST_ID] == mine


async def test_a_malformed_request_id_is_replaced(api: Api) -> None:
    answer = await api.get("/healthz", headers={REQUEST_ID: "bad id\twith spaces"})
    assert answer.headers[REQUEST_ID] != "bad id\twith spaces"
    assert len(answer.headers[REQUEST_ID]) >= 8


async def test_answers_do_not_name_the_server_software(api: Api) -> None:
    answer = await api.get("/healthz")
    assert "aiohttp" not in answer.headers.get("Server", "").lower()
    assert "python" not in answer.headers.get("Server", "").lower()


def test_every_error_in_the_document_is_a_problem(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == [PROBLEM], (method, path, status)
                assert "X-Request-Id" in response["headers"], (method, path, status)


@pytest.fixture(scope="module")
async def document(api: Api) -> dict[str, Any]:
    body: dict[str, Any] = (await api.get("/api/v1/openapi.json")).body
    return body


async def test_an_unreachable_service_is_a_503_problem_without_its_address(
    api: Api, stack: LocalStack, tenant: Tenant, tmp_path: Path
) -> None:
    nobody = free_port()
    dead = f"127.0.0.1:{nobody}"
    with replica(
        stack,
        tmp_path,
        BOOKING_SERVICE_ADDR=dead,
        HOLD_SERVICE_ADDR=dead,
        RPC_TIMEOUT_SECONDS="1",
    ) as url:
        answer = await Api(api.session, url).get("/api/v1/locations", tenant.business_key)
    body = assert_problem(answer, 503)
    shown = str(body) + str(dict(answer.headers))
    for internal in ("127.0.0.1", str(nobody), "Traceback", "grpc", 'File "'):
        assert internal not in shown, internal


async def raw_answer(api: Api, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """What the gateway answers to bytes no HTTP client would send."""
    host, port = api.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    return status_line, headers, body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/v1/bookings HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"G@T /api/v1/bookings HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/bookings HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    ],
    ids=["bad-content-length", "bad-method", "header-over-8-KiB"],
)
async def test_malformed_http_gets_a_400_problem_with_a_request_id(
    api: Api, request_bytes: bytes
) -> None:
    status_line, headers, body = await raw_answer(api, request_bytes)
    assert " 400 " in status_line
    assert headers["content-type"].startswith(PROBLEM)
    assert headers["x-request-id"]
    assert "aiohttp" not in headers.get("server", "").lower()
    problem = json.loads(body)
    assert problem["status"] == 400
    # The offending bytes are not echoed back.
    assert "aaaa" not in problem["detail"] and "@" not in problem["detail"]
