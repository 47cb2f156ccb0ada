"""Storage of received events: one row per event id, counting redeliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class EventReceipt:
    event_id: UUID
    type: str
    business_id: UUID
    received_at: datetime
    deliveries: int


class ReceiptRepository:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    async def record(self, event: dict[str, Any]) -> bool:
        """Store an event; False when it was already stored (a JetStream redelivery)."""
        inserted = await self.db.fetchval(
            """
            INSERT INTO event_receipts (event_id, type, business_id, payload)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (event_id) DO UPDATE SET deliveries = event_receipts.deliveries + 1
            RETURNING deliveries = 1
            """,
            UUID(event["id"]),
            event["type"],
            UUID(event["business_id"]),
            event,
        )
        return bool(inserted)

    async def get(self, event_id: UUID) -> EventReceipt | None:
        row = await self.db.fetchrow(
            "SELECT event_id, type, business_id, received_at, deliveries FROM event_receipts "
            "WHERE event_id = $1",
            event_id,
        )
        return EventReceipt(**dict(row)) if row else None
