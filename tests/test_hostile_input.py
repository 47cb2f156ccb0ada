"""Hostile and odd input, on every route: the answer is a success or a 4xx problem, never
a 5xx and never a hang, and no service logs an error for it.

Requests are written byte for byte on a raw connection, so headers can carry any bytes
and bodies can lie about their length or encoding, as a hostile client's can.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from calendence.devstack.stack import SERVICES, LocalStack

from tests.api import AROUND_THE_CLOCK, Api, new_tenant, tomorrow_at
from tests.booking_helpers import open_salon
from tests.test_keys import replica

# Longer than the gateway's body timeout: a request that takes this long is hanging.
ANSWER_WITHIN_SECONDS = 20


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


@dataclass(frozen=True)
class Place:
    """Real ids and keys the cases point at, so requests get past 404 and 401."""

    values: dict[str, str]


async def send_raw(url: str, request: bytes, *, stall: bool = False) -> Answer:
    """Write `request` as is and read one answer (the connection is closed after it)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        return Answer(status, headers, body)
    finally:
        writer.close()


def http_request(
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes | None = None,
    *,
    content_length: int | None = None,
) -> bytes:
    request_line = f"{method} {path} HTTP/1.1".encode("latin-1")
    lines = [request_line, b"Host: calendence.test", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body is not None or content_length is not None:
        length = len(body or b"") if content_length is None else content_length
        lines.append(b"Content-Length: " + str(length).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    # Header values may name a key or id as {business_key}, {session}, {hub_key}, ...
    headers: dict[str, bytes] = field(default_factory=dict)
    body: bytes | None = None
    expected: frozenset[int] = frozenset({422})
    # The key the request carries: business_key, session, hub_key, or "" for none.
    key: str = "business_key"
    # Sent after the headers as is, without a Content-Length (chunked bodies).
    raw_tail: bytes = b""


def case(name: str, method: str, path: str, *expected: int, **kw: Any) -> Case:
    return Case(name, method, path, expected=frozenset(expected or {422}), **kw)


def hold_body(starts_at: str) -> bytes:
    return (
        b'{"service_id":"{service_id}","location_id":"{location_id}","starts_at":"'
        + starts_at.encode()
        + b'"}'
    )


AVAILABILITY = "/api/v1/availability?service_id={service_id}&location_id={location_id}"
GZIP_JSON = gzip.compress(b'{"name":"Compressed Salon","timezone":"Europe/London"}')
GZIP_BOMB = gzip.compress(b" " * (8 * 1024 * 1024))
NOT_GZIP = b'{"name":"plain, not gzip"}'

CASES = [
    # Times at the edge of the calendar, on every time field.
    case(
        "hold at the last granule of 9999",
        "POST",
        "/api/v1/bookings/hold",
        body=hold_body("9999-12-31T23:45:00+00:00"),
        key="session",
    ),
    case(
        "hold at -14:00 past 9999 in UTC",
        "POST",
        "/api/v1/bookings/hold",
        body=hold_body("9999-12-31T20:00:00-14:00"),
        key="session",
    ),
    case(
        "hold at -23:59 past 9999 in UTC",
        "POST",
        "/api/v1/bookings/hold",
        body=hold_body("9999-12-31T23:59:59-23:59"),
    ),
    case(
        "hold at +23:59 before year 1 in UTC",
        "POST",
        "/api/v1/bookings/hold",
        body=hold_body("0001-01-01T00:00:00+23:59"),
    ),
    case(
        "hold at the first moment of year 1",
        "POST",
        "/api/v1/bookings/hold",
        body=hold_body("0001-01-01T00:00:00-23:59"),
    ),
    case(
        "hold at an offset of 24 hours",
        "POST",
        "/api/v1/bookings/hold",
        body=hold_body("2030-01-01T10:00:00+24:00"),
    ),
    case(
        "hold in year 10000",
        "POST",
        "/api/v1/bookings/hold",
        body=hold_body("10000-01-01T00:00:00+00:00"),
    ),
    case(
        "hold at a Unix timestamp",
        "POST",
        "/api/v1/bookings/hold",
        body=b'{"service_id":"{service_id}","location_id":"{location_id}",'
        b'"starts_at":253402300799}',
    ),
    case(
        "hold late in 9999, past any booking horizon",
        "POST",
        "/api/v1/bookings/hold",
        body=hold_body("9999-11-30T14:00:00+00:00"),
        key="session",
    ),
    case(
        "a day-long hold with a day of buffer, at UTC+14, at the last accepted start",
        "POST",
        "/api/v1/bookings/hold",
        body=b'{"service_id":"{long_service_id}","location_id":"{edge_location_id}",'
        b'"starts_at":"9999-11-30T23:55:00+00:00"}',
    ),
    case(
        "availability of a day-long service at UTC+14 up to the last accepted moment",
        "GET",
        "/api/v1/availability?service_id={long_service_id}&location_id={edge_location_id}"
        "&from=9999-11-01T00:00:00Z&to=9999-11-30T23:59:59Z",
        200,
    ),
    case(
        "availability to -23:59 past 9999",
        "GET",
        AVAILABILITY + "&from=9999-12-30T00:00:00Z&to=9999-12-31T23:59:59-23:59",
    ),
    case(
        "availability from +23:59 before year 1",
        "GET",
        AVAILABILITY + "&from=0001-01-01T00:00:00%2B23:59&to=0001-01-05T00:00:00Z",
    ),
    case(
        "availability late in 9999",
        "GET",
        AVAILABILITY + "&from=9999-11-20T00:00:00Z&to=9999-11-30T23:59:59%2B00:00",
        200,
    ),
    case(
        "booking list from -23:59 past 9999",
        "GET",
        "/api/v1/bookings?from=9999-12-31T23:59:59-23:59",
    ),
    case(
        "booking list to +23:59 before year 1",
        "GET",
        "/api/v1/bookings?to=0001-01-01T00:00:00%2B23:59",
    ),
    case(
        "booking list from early year 1", "GET", "/api/v1/bookings?from=0001-01-02T00:00:00Z", 200
    ),
    case(
        "reschedule past 9999",
        "PATCH",
        "/api/v1/bookings/{booking_id}",
        body=b'{"starts_at":"9999-12-31T23:45:00+00:00"}',
    ),
    case(
        "reschedule end at -14:00 past 9999",
        "PATCH",
        "/api/v1/bookings/{booking_id}",
        body=b'{"starts_at":"2030-01-01T10:00:00+00:00","ends_at":"9999-12-31T20:00:00-14:00"}',
    ),
    # Any bytes in any header.
    case(
        "Idempotency-Key of non-ASCII bytes on a hold",
        "POST",
        "/api/v1/bookings/hold",
        headers={"Idempotency-Key": b"\xc3\xa9\xff\xfe"},
        body=hold_body("2030-01-01T10:00:00+00:00"),
    ),
    case(
        "Idempotency-Key of non-ASCII bytes on a booking",
        "POST",
        "/api/v1/bookings",
        headers={"Idempotency-Key": "clé-ünïcode".encode()},
        # A whole request, so that only the key can be wrong with it.
        body=b'{"hold_id":"{booking_id}","client":{"first_name":"Jane","last_name":"Doe",'
        b'"email":"jane@example.com","phone":"+15551234567"}}',
    ),
    case(
        "Idempotency-Key over 255 characters",
        "POST",
        "/api/v1/bookings/hold",
        headers={"Idempotency-Key": b"k" * 256},
        body=hold_body("2030-01-01T10:00:00+00:00"),
    ),
    case(
        "Authorization of non-ASCII bytes",
        "GET",
        "/api/v1/locations",
        401,
        headers={"Authorization": b"Bearer cal_biz_\xff\xfe\x80"},
        key="",
    ),
    case(
        "Authorization in UTF-8",
        "GET",
        "/api/v1/services",
        401,
        headers={"Authorization": "Bearer cal_biz_ключ".encode()},
        key="",
    ),
    case(
        "Authorization of 8000 characters",
        "GET",
        "/api/v1/staff",
        401,
        headers={"Authorization": b"Bearer " + b"x" * 8000},
        key="",
    ),
    case(
        "Calendence-Business of non-ASCII bytes",
        "GET",
        "/api/v1/businesses/{business_id}",
        headers={"Calendence-Business": b"\xff\xfe"},
        key="hub_key",
    ),
    case(
        "X-Request-Id of non-ASCII bytes",
        "GET",
        "/api/v1/custom-fields",
        200,
        headers={"X-Request-Id": b"\xff" * 12},
    ),
    case(
        "Origin of non-ASCII bytes on a preflight",
        "OPTIONS",
        "/api/v1/bookings/hold",
        204,
        headers={"Origin": b"https://\xff.example", "Access-Control-Request-Method": b"POST"},
        key="",
    ),
    case(
        "Origin of non-ASCII bytes",
        "GET",
        "/api/v1/webhook-endpoints",
        200,
        headers={"Origin": b"https://\xc3\xa9.example"},
    ),
    case(
        "Content-Type of non-ASCII bytes",
        "POST",
        "/api/v1/sessions",
        201,
        headers={"Content-Type": b"application/\xffjson"},
        body=b"{}",
    ),
    case(
        "Stripe-Signature of non-ASCII bytes",
        "POST",
        "/webhooks/stripe",
        400,
        headers={"Stripe-Signature": b"t=\xff,v1=\xfe"},
        body=b"{}",
        key="",
    ),
    case(
        "Accept and Cookie of non-ASCII bytes",
        "GET",
        "/api/v1/bookings/{booking_id}",
        200,
        headers={"Accept": b"\xff/\xfe", "Cookie": b"a=\xff"},
    ),
    case(
        "a header name of non-ASCII bytes",
        "GET",
        "/api/v1/locations",
        400,
        headers={"X-\xff\xfe": b"value"},
    ),
    case(
        "a NUL byte in a header value",
        "GET",
        "/api/v1/services",
        400,
        headers={"X-Note": b"a\x00b"},
    ),
    case(
        "forwarding headers of non-ASCII bytes",
        "GET",
        "/api/v1/staff",
        200,
        headers={"X-Forwarded-Host": b"\xff.example", "Forwarded": b"for=\xff;host=\xfe"},
    ),
    case(
        "a header line over 8 KiB",
        "GET",
        "/api/v1/locations",
        400,
        headers={"X-Padding": b"a" * 9000},
    ),
    case("non-ASCII bytes in the path", "GET", "/api/v1/locations/\xff", 400),
    case("undecodable percent-escapes in the path", "GET", "/api/v1/services/%ff%fe", 404),
    case("undecodable percent-escapes in the query", "GET", "/api/v1/bookings?status=%ff%fe"),
    case(
        "a page size past any integer",
        "GET",
        "/api/v1/webhook-endpoints/{endpoint_id}/deliveries?limit=99999999999999999999999",
    ),
    case("a cursor of garbage", "GET", "/api/v1/businesses?cursor=%ff%00%22", 422, key="hub_key"),
    # Bodies in encodings that do not decode, or that we do not decode.
    case(
        "gzip that is not gzip",
        "POST",
        "/api/v1/sessions",
        400,
        headers={"Content-Encoding": b"gzip"},
        body=NOT_GZIP,
    ),
    case(
        "gzip that is not gzip, with an Idempotency-Key",
        "POST",
        "/api/v1/bookings/hold",
        400,
        headers={"Content-Encoding": b"gzip", "Idempotency-Key": b"hostile-gzip"},
        body=NOT_GZIP,
        key="session",
    ),
    case(
        "deflate that is not deflate",
        "PATCH",
        "/api/v1/locations/{location_id}",
        400,
        headers={"Content-Encoding": b"deflate"},
        body=NOT_GZIP,
    ),
    case(
        "gzip that is not gzip, to Stripe's webhook",
        "POST",
        "/webhooks/stripe",
        400,
        headers={"Content-Encoding": b"gzip", "Stripe-Signature": b"t=1,v1=00"},
        body=NOT_GZIP,
        key="",
    ),
    case(
        "brotli, which the gateway cannot decode",
        "POST",
        "/api/v1/businesses",
        400,
        415,
        headers={"Content-Encoding": b"br"},
        body=NOT_GZIP,
        key="hub_key",
    ),
    case(
        "an encoding nobody knows",
        "POST",
        "/api/v1/custom-fields",
        415,
        headers={"Content-Encoding": b"x-hostile"},
        body=NOT_GZIP,
    ),
    case(
        "gzip of 8 MiB of spaces",
        "POST",
        "/api/v1/staff",
        413,
        headers={"Content-Encoding": b"gzip"},
        body=GZIP_BOMB,
    ),
    case(
        "real gzip (the control)",
        "POST",
        "/api/v1/locations",
        201,
        headers={"Content-Encoding": b"gzip"},
        body=GZIP_JSON,
    ),
    case(
        "real deflate (the control)",
        "PATCH",
        "/api/v1/locations/{location_id}",
        200,
        headers={"Content-Encoding": b"deflate"},
        body=zlib.compress(b'{"name":"Deflated"}'),
    ),
    case(
        "a negative Content-Length",
        "POST",
        "/api/v1/sessions",
        400,
        headers={"Content-Length": b"-5"},
    ),
    case(
        "a Content-Length that is not a number",
        "PATCH",
        "/api/v1/custom-fields/{field_id}",
        400,
        headers={"Content-Length": b"12abc"},
    ),
    case(
        "a Content-Length past 64 bits",
        "POST",
        "/api/v1/bookings",
        400,
        headers={"Content-Length": b"99999999999999999999999"},
    ),
    case(
        "a chunk size that is not hex",
        "POST",
        "/api/v1/webhook-endpoints",
        400,
        headers={"Transfer-Encoding": b"chunked"},
        raw_tail=b"zz\r\n",
    ),
    case(
        "Content-Length and Transfer-Encoding at once",
        "PATCH",
        "/api/v1/webhook-endpoints/{endpoint_id}",
        400,
        headers={"Transfer-Encoding": b"chunked"},
        body=b"0\r\n\r\n",
    ),
    # Bodies that are not what they claim.
    case(
        "a body over 1 MiB",
        "POST",
        "/api/v1/webhook-endpoints/{endpoint_id}/redeliver",
        413,
        body=b'{"delivery_id":"' + b"a" * (1024 * 1024 + 10) + b'"}',
    ),
    case(
        "JSON nested 100,000 deep",
        "PATCH",
        "/api/v1/services/{service_id}",
        body=b"[" * 100_000 + b"]" * 100_000,
    ),
    case(
        "a lone UTF-16 surrogate in a string",
        "PATCH",
        "/api/v1/staff/{staff_id}",
        body=b'{"name":"\\ud800"}',
    ),
    case(
        "bytes that are not UTF-8",
        "POST",
        "/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
        200,
        422,
        body=b"\xff\xfe\xfd",
    ),
    case(
        "an integer past 64 bits",
        "PATCH",
        "/api/v1/services/{service_id}",
        body=b'{"duration_minutes":99999999999999999999999999}',
    ),
    case(
        "a float past any double",
        "PATCH",
        "/api/v1/services/{service_id}",
        body=b'{"price_amount":1e999}',
    ),
    case("an id that is a path traversal", "GET", "/api/v1/bookings/..%2F..%2Fetc", 404),
    case(
        "a hold id that is not a UUID", "DELETE", "/api/v1/bookings/hold/%00%ff", 404, key="session"
    ),
    case("UTF-8 in the path of a key", "DELETE", "/api/v1/api-keys/\xc3\xa9", 400),
    case(
        "a NUL in a custom field label",
        "PATCH",
        "/api/v1/custom-fields/{field_id}",
        body=b'{"label":"a\\u0000b"}',
    ),
    case(
        "a non-ASCII business id header on a list",
        "GET",
        "/api/v1/bookings",
        headers={"Calendence-Business": "ünïcode".encode()},
        key="hub_key",
    ),
    case(
        "a DELETE whose body is not the gzip it claims",
        "DELETE",
        "/api/v1/bookings/{booking_id}",
        400,
        headers={"Content-Encoding": b"gzip"},
        body=b"not gzip at all",
    ),
]


def _fill(template: bytes, place: Place) -> bytes:
    for name, value in place.values.items():
        template = template.replace(b"{" + name.encode() + b"}", value.encode())
    return template


def build(hostile: Case, place: Place) -> bytes:
    key = place.values[hostile.key].encode() if hostile.key else b""
    headers = [(b"Authorization", b"Bearer " + key)] if key else []
    headers += [
        (name.encode("latin-1"), _fill(value, place)) for name, value in hostile.headers.items()
    ]
    if hostile.body is not None and "Content-Type" not in hostile.headers:
        headers.append((b"Content-Type", b"application/json"))
    path = _fill(hostile.path.encode("latin-1"), place).decode("latin-1")
    body = _fill(hostile.body, place) if hostile.body is not None else None
    return http_request(hostile.method, path, headers, body) + hostile.raw_tail


def service_log(stack: LocalStack, service: str = "gateway") -> Path:
    return stack.state_dir / "logs" / f"{service}.log"


def gateway_log(stack: LocalStack) -> Path:
    return service_log(stack)


def new_log_lines(stack: LocalStack, offset: int, service: str = "gateway") -> list[dict[str, Any]]:
    with open(service_log(stack, service), "rb") as log:
        log.seek(offset)
        return [json.loads(line) for line in log.read().splitlines() if line.startswith(b"{")]


@pytest.fixture(scope="module")
async def place(api: Api, hub: dict[str, str]) -> Place:
    tenant = await new_tenant(api, hub["key"])
    salon = await open_salon(tenant)
    booking = await salon.booking(tomorrow_at(11))
    staff = await tenant.staff([salon.service_id], [salon.location_id])
    # Open around the clock in the earliest time zone, with the longest service.
    edge = await tenant.location(timezone="Pacific/Kiritimati", opening_hours=AROUND_THE_CLOCK)
    longest = await tenant.service([edge["id"]], duration_minutes=24 * 60, buffer_minutes=24 * 60)
    custom_field = await tenant.create(
        "custom-fields", {"key": "notes", "label": "Notes", "type": "text"}
    )
    # Only for an event no case causes: nothing is ever sent to it.
    endpoint = await tenant.create(
        "webhook-endpoints", {"url": "http://127.0.0.1:9/hook", "events": ["booking.completed"]}
    )
    return Place(
        {
            "business_key": tenant.business_key,
            "session": await tenant.session_token(),
            "hub_key": hub["key"],
            "business_id": tenant.business_id,
            "service_id": salon.service_id,
            "location_id": salon.location_id,
            "booking_id": booking["id"],
            "staff_id": staff["id"],
            "edge_location_id": edge["id"],
            "long_service_id": longest["id"],
            "field_id": custom_field["id"],
            "endpoint_id": endpoint["id"],
        }
    )


def test_the_table_has_at_least_forty_hostile_inputs() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("hostile", CASES, ids=[c.name for c in CASES])
async def test_hostile_input_gets_a_success_or_a_4xx_problem(
    stack: LocalStack, place: Place, hostile: Case
) -> None:
    offsets = {name: service_log(stack, name).stat().st_size for name in SERVICES}
    request = build(hostile, place)
    answer = await asyncio.wait_for(send_raw(stack.gateway_url, request), ANSWER_WITHIN_SECONDS)

    assert answer.status in hostile.expected, (answer.status, answer.body[:300])
    assert answer.headers.get("x-request-id")
    if answer.status >= 400:
        assert answer.headers["content-type"].startswith("application/problem+json")
        problem = answer.problem()
        assert problem["status"] == answer.status
        assert problem["type"].startswith("https://calendence.com/problems/")
    await asyncio.sleep(0.1)  # log lines may be written just after the answer
    errors = [
        line
        for name, offset in offsets.items()
        for line in new_log_lines(stack, offset, name)
        if line["level"] in ("error", "critical")
    ]
    assert errors == []


STALLING_ROUTES = [
    ("POST", "/api/v1/sessions", "business_key"),
    ("POST", "/api/v1/bookings/hold", "session"),
    ("PATCH", "/api/v1/locations/{location_id}", "business_key"),
    ("POST", "/webhooks/stripe", ""),
]


async def _stall(stack: LocalStack, place: Place, method: str, path: str, key: str) -> float:
    """Announce 1,000 bytes, send 10; seconds until the connection is closed."""
    started = time.monotonic()
    headers = [(b"Authorization", b"Bearer " + place.values[key].encode())] if key else []
    request = http_request(
        method, _fill(path.encode(), place).decode(), headers, content_length=1000
    )
    host, port = stack.gateway_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request + b'{"partial"')
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), ANSWER_WITHIN_SECONDS)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"application/problem+json" in answer
    return time.monotonic() - started


async def test_a_body_that_stalls_is_answered_408_and_the_connection_closed(
    stack: LocalStack, place: Place
) -> None:
    """REQUEST_BODY_TIMEOUT_SECONDS (10 by default) after the headers, on every route."""
    waited = await asyncio.gather(
        *(_stall(stack, place, method, path, key) for method, path, key in STALLING_ROUTES)
    )
    # The answer came from the timeout (not from a read that ended early).
    assert min(waited) >= 9, waited


def _five_hundreds(metrics: str) -> float:
    return sum(
        float(value)
        for value in re.findall(
            r'^calendence_http_requests_total\{[^}]*status="5\d\d"[^}]*\} (\S+)$', metrics, re.M
        )
    )


def _count(metrics: str, route: str, status: str) -> float:
    labels = f'route="{route}",status="{status}"'
    pattern = r"^calendence_http_requests_total\{[^}]*" + re.escape(labels) + r"\} (\S+)$"
    found = re.findall(pattern, metrics, re.M)
    return float(found[0]) if found else 0.0


async def _metrics(api: Api) -> str:
    answer = await api.get("/metrics")
    assert answer.status == 200
    return str(answer.body)


async def test_a_client_protocol_error_is_a_warning_without_traceback_and_no_5xx(
    stack: LocalStack, api: Api
) -> None:
    before = await _metrics(api)
    offset = gateway_log(stack).stat().st_size
    request = http_request("GET", "/api/v1/locations", [(b"X-Padding", b"a" * 9000)])
    answer = await send_raw(stack.gateway_url, request)
    assert answer.status == 400
    await asyncio.sleep(0.1)

    (line,) = [
        line for line in new_log_lines(stack, offset) if line["msg"] == "unparsable request refused"
    ]
    assert line["level"] == "warning"
    assert "exc" not in line and "Traceback" not in json.dumps(line)
    assert _five_hundreds(await _metrics(api)) == _five_hundreds(before)


async def test_a_client_leaving_mid_body_is_logged_at_info_and_counted_as_499_not_5xx(
    stack: LocalStack, api: Api, place: Place
) -> None:
    before = await _metrics(api)
    offset = gateway_log(stack).stat().st_size
    headers = [(b"Authorization", b"Bearer " + place.values["business_key"].encode())]
    host, port = stack.gateway_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(http_request("POST", "/api/v1/sessions", headers, content_length=1000) + b"{")
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()

    deadline = time.monotonic() + 5
    while True:
        lines = new_log_lines(stack, offset)
        left = [
            line for line in lines if line["msg"] == "client left before sending the whole body"
        ]
        if left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert [line["level"] for line in left] == ["info"]
    assert not [line for line in lines if line["level"] in ("error", "critical") or "exc" in line]
    after = await _metrics(api)
    assert _count(after, "/api/v1/sessions", "499") == _count(before, "/api/v1/sessions", "499") + 1
    assert _five_hundreds(after) == _five_hundreds(before)


def test_every_500_carries_the_same_problem_type() -> None:
    """The gateway's own last-resort 500 and a service's InternalError look alike."""
    from calendence.errors import InternalError
    from gateway.problems import INTERNAL_ERROR_DETAIL, problem_from_error, problem_response

    ours = json.loads(problem_response(500, INTERNAL_ERROR_DETAIL).body)  # type: ignore[arg-type]
    theirs = json.loads(problem_from_error(InternalError(INTERNAL_ERROR_DETAIL)).body)  # type: ignore[arg-type]
    assert ours == theirs
    assert ours["type"] == "https://calendence.com/problems/internal-error"


async def test_a_request_whose_headers_never_end_is_closed_after_the_idle_timeout(
    stack: LocalStack, tmp_path: Path
) -> None:
    """IDLE_CONNECTION_TIMEOUT_SECONDS, short on a gateway replica of this test's own."""
    with replica(stack, tmp_path, IDLE_CONNECTION_TIMEOUT_SECONDS="2") as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"GET /api/v1/locations HTTP/1.1\r\nHost: calendence.test\r\nX-Slow: ")
            await writer.drain()
            started = time.monotonic()
            received = await asyncio.wait_for(reader.read(), ANSWER_WITHIN_SECONDS)
            waited = time.monotonic() - started
        finally:
            writer.close()
    assert received == b""  # closed, with nothing to answer to
    assert 1.5 <= waited < 10, waited
