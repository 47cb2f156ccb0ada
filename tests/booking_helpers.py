"""A salon ready to book, and the two calls of the Bookings page."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from calendence.devstack.stack import LocalStack

from tests.api import Answer, Tenant, created, iso

JANE = {
    "first_name": "Jane",
    "last_name": "Doe",
    "email": "jane@example.com",
    "phone": "+15551234567",
}


@dataclass
class Salon:
    tenant: Tenant
    location_id: str
    service_id: str
    deposit_service_id: str

    async def hold(
        self,
        token: str,
        starts_at: datetime,
        service_id: str | None = None,
        staff_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        slot = {
            "service_id": service_id or self.service_id,
            "location_id": self.location_id,
            "starts_at": iso(starts_at),
        }
        if staff_id:
            slot["staff_id"] = staff_id
        return await self.tenant.api.post("/api/v1/bookings/hold", token, slot, headers=headers)

    async def book(self, token: str, hold_id: str, **fields: Any) -> Answer:
        return await self.tenant.api.post(
            "/api/v1/bookings", token, {"hold_id": hold_id, "client": JANE, **fields}
        )

    async def booking(self, starts_at: datetime, service_id: str | None = None) -> dict[str, Any]:
        """Hold and book in one go, as a widget would; returns the booking."""
        token = await self.tenant.session_token()
        hold = created(await self.hold(token, starts_at, service_id))
        booking: dict[str, Any] = created(await self.book(token, hold["hold_id"]))
        return booking


async def open_salon(tenant: Tenant) -> Salon:
    """One location open 09:00-17:00 London time, a 30-minute service without staff
    (so the location+service is the booked resource) and one with a deposit."""
    location = await tenant.location()
    service = await tenant.service([location["id"]])
    deposit = await tenant.service(
        [location["id"]], price_amount=9000, deposit_amount=2000, duration_minutes=60
    )
    return Salon(tenant, location["id"], service["id"], deposit["id"])


@contextlib.contextmanager
def booking_service_run_with(stack: LocalStack, env: dict[str, str]) -> Iterator[None]:
    """booking-service restarted with `env` set, then again as it was."""
    _restart_booking_service(stack, env)
    try:
        yield
    finally:
        _restart_booking_service(stack, {})


def _restart_booking_service(stack: LocalStack, env: dict[str, str]) -> None:
    stack.services["booking-service"].stop()
    stack.start_service("booking-service", env)
    stack.wait_until_ready()
