"""What the hold and availability tests share: a small shop to book, and hold calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from calendence import events
from nats.aio.msg import Msg

from tests.api import Answer, Tenant, iso

HOLD_PATH = "/api/v1/bookings/hold"


@dataclass
class Shop:
    """A business with one location and one service (and maybe staff) to hold."""

    tenant: Tenant
    location: dict[str, Any]
    service: dict[str, Any]
    staff: list[dict[str, Any]]

    @property
    def location_id(self) -> str:
        return str(self.location["id"])

    @property
    def service_id(self) -> str:
        return str(self.service["id"])

    def hold_body(self, starts_at: datetime | str, **extra: Any) -> dict[str, Any]:
        return {
            "service_id": self.service_id,
            "location_id": self.location_id,
            "starts_at": starts_at if isinstance(starts_at, str) else iso(starts_at),
            **extra,
        }

    async def hold(self, token: str, starts_at: datetime | str, **extra: Any) -> Answer:
        return await self.tenant.api.post(HOLD_PATH, token, self.hold_body(starts_at, **extra))

    async def release(self, key: str, hold_id: str) -> Answer:
        return await self.tenant.api.delete(f"{HOLD_PATH}/{hold_id}", key)

    async def sessions(self, count: int) -> list[str]:
        return list(await asyncio.gather(*(self.tenant.session_token() for _ in range(count))))


async def open_shop(
    tenant: Tenant,
    *,
    staff: int = 0,
    location: dict[str, Any] | None = None,
    staff_overrides: dict[str, Any] | None = None,
    **service: Any,
) -> Shop:
    made_location = await tenant.location(**(location or {}))
    made_service = await tenant.service([made_location["id"]], **service)
    members = [
        await tenant.staff([made_service["id"]], [made_location["id"]], **(staff_overrides or {}))
        for _ in range(staff)
    ]
    return Shop(tenant, made_location, made_service, members)


def assert_problem(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status, (answer.status, answer.body)
    assert answer.content_type == "application/problem+json"
    body: dict[str, Any] = answer.body
    assert body["status"] == status
    return body


def field_errors(answer: Answer) -> dict[str, str]:
    """The per-field reasons of a 422 problem."""
    errors: dict[str, str] = assert_problem(answer, 422)["errors"]
    return errors


@contextlib.asynccontextmanager
async def catalogue_reads(nats_url: str, business_id: str) -> AsyncIterator[list[bytes]]:
    """Every read of the business's catalogue snapshot from the bucket while the block
    runs: the requests hold-service sends to JetStream, seen on NATS."""
    seen: list[bytes] = []
    client = await events.connect(nats_url, "test-catalogue-reads")

    async def note(message: Msg) -> None:
        if business_id.encode() in message.data:
            seen.append(message.data)

    try:
        await client.subscribe(f"$JS.API.STREAM.MSG.GET.KV_{events.CATALOGUE_BUCKET}", cb=note)
        await client.flush()
        yield seen
        await client.flush()
        await asyncio.sleep(0.1)  # let the callbacks of what arrived run
    finally:
        await client.close()
