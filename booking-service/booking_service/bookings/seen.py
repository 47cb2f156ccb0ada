"""What booking-service last saw of each business's booking terms, so that a booking
need not read them first: the terms that are in force come back with the booking's own
insert, and a booking written on outdated ones is rolled back and written again (see
`Creation`). Per process; nothing here is ever the final word."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

# Businesses whose custom fields are kept at most: past it the memory starts again.
MAX_BUSINESSES = 10_000


@dataclass
class SeenTerms:
    # Services last seen asking a deposit: their terms are read before a booking (the
    # Stripe checkout comes before the transaction).
    services_asking_deposits: set[UUID] = field(default_factory=set)
    # Each business's custom fields as last seen (`BookingRepository.custom_fields`).
    custom_fields: dict[UUID, list[dict[str, Any]]] = field(default_factory=dict)

    def saw_custom_fields(self, business_id: UUID, definitions: list[dict[str, Any]]) -> None:
        if len(self.custom_fields) >= MAX_BUSINESSES and business_id not in self.custom_fields:
            self.custom_fields.clear()
        self.custom_fields[business_id] = definitions
