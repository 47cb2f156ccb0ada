"""Reading received events: one row per event id, counting redeliveries (stored by
`DeliveryRepository.record_events`, with the deliveries they make)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from calendence.storage import Repository


@dataclass(frozen=True)
class EventReceipt:
    event_id: UUID
    type: str
    business_id: UUID
    received_at: datetime
    deliveries: int


class ReceiptRepository(Repository):
    async def get(self, event_id: UUID) -> EventReceipt | None:
        row = await self.db.fetchrow(
            "SELECT event_id, type, business_id, received_at, deliveries FROM event_receipts "
            "WHERE event_id = $1",
            event_id,
        )
        return EventReceipt(**dict(row)) if row else None
