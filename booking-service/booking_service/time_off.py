"""Time off and closures: a staff member away, or a location shut, for a while.

Nothing already booked or held moves: creating time off over live bookings succeeds
and names them, so the business decides what to do with each.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any
from uuid import UUID

from calendence.errors import InvalidInput, NotFound
from calendence.pages import filtered_page
from calendence.schemas.common import parse_json
from calendence.schemas.scheduling import TimeOffFields, TimeOffFilters

from booking_service.catalogue import ChangeListener
from booking_service.time_off_repository import TimeOffRepository


def render(row: dict[str, Any]) -> dict[str, Any]:
    return {"object": "time_off"} | {k: v for k, v in row.items() if k != "seq"}


class TimeOffEntries:
    def __init__(self, repository: TimeOffRepository, on_change: ChangeListener) -> None:
        self.repository = repository
        self.on_change = on_change

    async def create(self, business_id: UUID, body: bytes) -> dict[str, Any]:
        fields = parse_json(TimeOffFields, body)
        made = await self.repository.insert(business_id, uuid.uuid4(), fields.model_dump())
        if made is None:
            subject = "staff_id" if fields.staff_id is not None else "location_id"
            raise InvalidInput(
                "the request names unknown resources",
                fields={subject: f"no such {subject.removesuffix('_id')} in this business"},
            )
        row, conflicting = made
        await self.on_change(business_id)
        return render(row) | {"conflicting_booking_ids": conflicting}

    async def get(self, business_id: UUID, time_off_id: UUID) -> dict[str, Any]:
        row = await self.repository.get(business_id, time_off_id)
        if row is None:
            raise NotFound("no such time off")
        return render(row)

    async def list_page(
        self, business_id: UUID, filters_json: bytes, cursor: str, limit: int
    ) -> tuple[list[dict[str, Any]], str]:
        read = functools.partial(self.repository.list_page, business_id)
        shown, next_cursor = await filtered_page(TimeOffFilters, filters_json, cursor, limit, read)
        return [render(r) for r in shown], next_cursor

    async def delete(self, business_id: UUID, time_off_id: UUID) -> None:
        if not await self.repository.delete(business_id, time_off_id):
            raise NotFound("no such time off")
        await self.on_change(business_id)
