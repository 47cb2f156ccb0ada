"""Deliveries as a business sees them: the recent ones with their attempts, and
redelivering one event by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from calendence.errors import Conflict, DomainError, NotFound
from calendence.pages import PageRequest
from calendence.schemas.common import parse_json
from calendence.schemas.webhooks import RedeliverRequest
from calendence.timefmt import to_iso

from notify_service.delivery_repository import DeliveryRepository

# What DeliveryRepository.redeliver reports missing -> the error the caller sees.
_REDELIVER_ERRORS: dict[str, tuple[type[DomainError], str]] = {
    "endpoint": (NotFound, "no such webhook endpoint"),
    "event": (NotFound, "no such event; only events this business has had can be redelivered"),
    "enabled": (Conflict, "the endpoint is disabled; enable it before redelivering"),
}


def render(row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON shape of a delivery and its attempts."""
    pending = row["status"] == "pending"
    return {
        "object": "webhook_delivery",
        "id": str(row["id"]),
        "endpoint_id": str(row["endpoint_id"]),
        "event_id": str(row["event_id"]),
        "event_type": row["event_type"],
        "status": row["status"],
        "redelivery": row["redelivery"],
        "attempt_count": len(row["attempts"]),
        "next_attempt_at": to_iso(row["next_attempt_at"]) if pending else None,
        "created_at": to_iso(row["created_at"]),
        "completed_at": to_iso(row["completed_at"]) if row["completed_at"] else None,
        "attempts": [
            {
                "attempt": attempt["attempt"],
                "attempted_at": attempt["attempted_at"].isoformat(),
                "status_code": attempt["status_code"],
                "latency_ms": attempt["latency_ms"],
                "error": attempt["error"],
            }
            for attempt in row["attempts"]
        ],
    }


class Deliveries:
    def __init__(self, repository: DeliveryRepository, on_new: Callable[[], None]) -> None:
        self.repository = repository
        self.on_new = on_new

    async def list_page(
        self, business_id: UUID, endpoint_id: UUID, cursor: str, limit: int
    ) -> tuple[list[dict[str, Any]], str]:
        page = PageRequest.of(cursor, limit)
        # Newest first: the page shows deliveries before the position (all on the first).
        rows = await self.repository.list_page(business_id, endpoint_id, page.position, page.fetch)
        if rows is None:
            raise NotFound("no such webhook endpoint")
        shown, next_cursor = page.cut(rows)
        return [render(r) for r in shown], next_cursor

    async def redeliver(self, business_id: UUID, endpoint_id: UUID, body: bytes) -> dict[str, Any]:
        wanted = parse_json(RedeliverRequest, body or b"{}")
        missing, row = await self.repository.redeliver(business_id, endpoint_id, wanted.event_id)
        if row is None:
            error, detail = _REDELIVER_ERRORS[missing]
            raise error(detail)
        self.on_new()
        return render(row)
