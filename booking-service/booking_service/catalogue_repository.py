"""SQL for the catalogue tables. Column names come from the constants below, never input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class CatalogueTable:
    name: str
    columns: tuple[str, ...]
    # Which live bookings stop this row from being deleted.
    booking_column: str


TABLES = {
    "locations": CatalogueTable(
        "locations", ("name", "address", "timezone", "opening_hours"), "location_id"
    ),
    "services": CatalogueTable(
        "services",
        (
            "name",
            "duration_minutes",
            "price_amount",
            "currency",
            "deposit_amount",
            "buffer_minutes",
            "active",
            "location_ids",
        ),
        "service_id",
    ),
    "staff": CatalogueTable(
        "staff", ("name", "email", "service_ids", "location_ids", "weekly_hours"), "staff_id"
    ),
    "custom_fields": CatalogueTable(
        "custom_fields", ("key", "label", "type", "required", "options"), ""
    ),
}


class CatalogueRepository:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    async def insert(
        self, table: CatalogueTable, business_id: UUID, row_id: UUID, values: dict[str, Any]
    ) -> dict[str, Any]:
        columns = ", ".join(table.columns)
        params = ", ".join(f"${i}" for i in range(3, len(table.columns) + 3))
        row = await self.db.fetchrow(
            f"INSERT INTO {table.name} (id, business_id, {columns}) VALUES ($1, $2, {params}) "
            "RETURNING *",
            row_id,
            business_id,
            *(values[c] for c in table.columns),
        )
        return dict(row)

    async def get(
        self, table: CatalogueTable, business_id: UUID, row_id: UUID
    ) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            f"SELECT * FROM {table.name} WHERE id = $1 AND business_id = $2 AND deleted_at IS NULL",
            row_id,
            business_id,
        )
        return dict(row) if row else None

    async def list_page(
        self, table: CatalogueTable, business_id: UUID, after_seq: int, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            f"SELECT * FROM {table.name} WHERE business_id = $1 AND deleted_at IS NULL "
            "AND seq > $2 ORDER BY seq LIMIT $3",
            business_id,
            after_seq,
            limit,
        )
        return [dict(r) for r in rows]

    async def list_all(self, table: CatalogueTable, business_id: UUID) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            f"SELECT * FROM {table.name} WHERE business_id = $1 AND deleted_at IS NULL "
            "ORDER BY seq",
            business_id,
        )
        return [dict(r) for r in rows]

    async def existing_ids(
        self, table: CatalogueTable, business_id: UUID, ids: list[UUID]
    ) -> set[UUID]:
        rows = await self.db.fetch(
            f"SELECT id FROM {table.name} WHERE business_id = $1 AND id = ANY($2::uuid[]) "
            "AND deleted_at IS NULL",
            business_id,
            ids,
        )
        return {r["id"] for r in rows}

    async def update(
        self, table: CatalogueTable, business_id: UUID, row_id: UUID, values: dict[str, Any]
    ) -> dict[str, Any] | None:
        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(table.columns, start=3))
        row = await self.db.fetchrow(
            f"UPDATE {table.name} SET {assignments}, updated_at = now() "
            "WHERE id = $1 AND business_id = $2 AND deleted_at IS NULL RETURNING *",
            row_id,
            business_id,
            *(values[c] for c in table.columns),
        )
        return dict(row) if row else None

    async def soft_delete_unless_booked(
        self, table: CatalogueTable, business_id: UUID, row_id: UUID
    ) -> str:
        """'deleted', 'missing' or 'booked' (live bookings still use the row)."""
        async with self.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT id FROM {table.name} WHERE id = $1 AND business_id = $2 "
                "AND deleted_at IS NULL FOR UPDATE",
                row_id,
                business_id,
            )
            if row is None:
                return "missing"
            if table.booking_column:
                # FOR UPDATE above serialises with bookings that lock the same row
                # (FOR KEY SHARE through their foreign keys), so none can slip in.
                booked = await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM bookings WHERE {table.booking_column} = $1 "
                    "AND status IN ('pending', 'confirmed', 'in_progress') AND ends_at > now())",
                    row_id,
                )
                if booked:
                    return "booked"
            await conn.execute(f"UPDATE {table.name} SET deleted_at = now() WHERE id = $1", row_id)
            return "deleted"
