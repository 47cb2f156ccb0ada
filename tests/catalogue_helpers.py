"""What the key and catalogue tests share: problem checks, the database, bookings rows."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from calendence.devstack.stack import LocalStack

from tests.api import Answer, Tenant

BUSINESS_HEADER = "Calendence-Business"


def problem(answer: Answer, status: int) -> dict[str, Any]:
    """The RFC 9457 body of an error answer, after checking its status and shape."""
    assert answer.status == status, (answer.status, answer.body)
    assert answer.content_type == "application/problem+json", answer.content_type
    body: dict[str, Any] = answer.body
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status
    return body


def invalid_fields(answer: Answer) -> set[str]:
    """The names a 422 answer lists as offending."""
    return set(problem(answer, 422)["errors"])


@contextlib.asynccontextmanager
async def database(stack: LocalStack) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to booking-service's database, for what the API cannot show."""
    connection = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        yield connection
    finally:
        await connection.close()


async def status_within(
    call: Callable[[], Awaitable[Answer]], wanted: int, seconds: float
) -> tuple[int, float]:
    """Repeat `call` until it answers `wanted` or `seconds` pass: (last status, elapsed)."""
    started = time.monotonic()
    while True:
        answer = await call()
        elapsed = time.monotonic() - started
        if answer.status == wanted or elapsed >= seconds:
            return answer.status, elapsed
        await asyncio.sleep(0.02)


async def insert_booking(
    connection: asyncpg.Connection,
    tenant: Tenant,
    *,
    location_id: str,
    service_id: str,
    staff_id: str | None = None,
    status: str = "confirmed",
    starts_in: timedelta = timedelta(days=1),
) -> uuid.UUID:
    """A booking row made directly, as booking-service would store it."""
    booking_id = uuid.uuid4()
    starts_at = datetime.now(UTC).replace(microsecond=0) + starts_in
    ends_at = starts_at + timedelta(minutes=30)
    await connection.execute(
        """
        INSERT INTO bookings (id, business_id, service_id, location_id, staff_id, resource_id,
                              status, starts_at, ends_at, blocked_until,
                              client_first_name, client_last_name, client_email)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 'Jane', 'Doe', 'jane@example.com')
        """,
        booking_id,
        uuid.UUID(tenant.business_id),
        uuid.UUID(service_id),
        uuid.UUID(location_id),
        uuid.UUID(staff_id) if staff_id else None,
        # A resource of its own: this row must never clash with another test's.
        f"test:{booking_id}",
        status,
        starts_at,
        ends_at,
    )
    return booking_id


async def list_ids(tenant: Tenant, collection: str, key: str | None = None) -> list[str]:
    """Every id in a catalogue list, following the cursor to the end."""
    ids: list[str] = []
    cursor = ""
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        answer = await tenant.api.get(
            f"/api/v1/{collection}", key or tenant.business_key, params=params
        )
        assert answer.status == 200, answer.body
        ids += [item["id"] for item in answer.body["data"]]
        if not answer.body["has_more"]:
            return ids
        cursor = answer.body["next_cursor"]
