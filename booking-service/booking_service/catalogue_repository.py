"""SQL for the catalogue tables. Column names come from the constants below, never input."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from calendence.storage import Repository, fetch_dict, mark_session_changed

# Turns the current row into the values to write; may raise to write nothing.
Change = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class CatalogueTable:
    name: str
    columns: tuple[str, ...]
    # Which live bookings stop this row from being deleted.
    booking_column: str
    # (table, id-list column) that name this row: a delete takes the row out of them,
    # so a service never keeps offering a deleted location (and a PATCH of its name
    # is never refused over an id the caller can no longer see).
    listed_in: tuple[tuple[str, str], ...] = ()


TABLES = {
    "locations": CatalogueTable(
        "locations",
        ("name", "address", "timezone", "opening_hours"),
        "location_id",
        (("services", "location_ids"), ("staff", "location_ids")),
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
            "booking_policy",
        ),
        "service_id",
        (("staff", "service_ids"),),
    ),
    "staff": CatalogueTable(
        "staff", ("name", "email", "service_ids", "location_ids", "weekly_hours"), "staff_id"
    ),
    "custom_fields": CatalogueTable(
        "custom_fields", ("key", "label", "type", "required", "options"), ""
    ),
}


async def take_turn(conn: asyncpg.Connection, table: str, owner: UUID) -> None:
    """Serialise inserts into one owner's list until this transaction ends.

    Lists page by `seq` (cursor = last seq seen). Two concurrent inserts could commit
    out of seq order, and a reader between the two commits would page past the lower
    seq and never see it. Taking `seq` and committing under one lock per owner keeps
    commit order and seq order the same, so every row is listed exactly once.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{table}:{owner}")


async def _lock_live_row(
    conn: asyncpg.Connection, table: CatalogueTable, business_id: UUID, row_id: UUID
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT * FROM {table.name} WHERE id = $1 AND business_id = $2 "
        "AND deleted_at IS NULL FOR UPDATE",
        row_id,
        business_id,
    )
    return dict(row) if row else None


@dataclass(frozen=True)
class SnapshotRows:
    """What a catalogue snapshot is made of, as stored: the live locations, services and
    staff, the business's booking policy and its time off not over yet."""

    rows: dict[str, list[dict[str, Any]]]
    booking_policy: dict[str, Any]
    time_off: list[dict[str, Any]]


async def _read_snapshot_rows(
    conn: asyncpg.Connection, business_id: UUID, now: datetime
) -> SnapshotRows:
    rows = {}
    for kind in ("locations", "services", "staff"):
        found = await conn.fetch(
            f"SELECT * FROM {TABLES[kind].name} WHERE business_id = $1 AND deleted_at IS NULL "
            "ORDER BY seq",
            business_id,
        )
        rows[kind] = [dict(r) for r in found]
    policy = await conn.fetchval("SELECT booking_policy FROM businesses WHERE id = $1", business_id)
    time_off = await conn.fetch(
        "SELECT staff_id, location_id, starts_at, ends_at FROM time_off "
        "WHERE business_id = $1 AND ends_at > $2 ORDER BY starts_at",
        business_id,
        now,
    )
    return SnapshotRows(rows, policy or {}, [dict(r) for r in time_off])


class CatalogueRepository(Repository):
    async def insert(
        self, table: CatalogueTable, business_id: UUID, row_id: UUID, values: dict[str, Any]
    ) -> dict[str, Any]:
        columns = ", ".join(table.columns)
        params = ", ".join(f"${i}" for i in range(3, len(table.columns) + 3))
        async with self.db.acquire() as conn, conn.transaction():
            await take_turn(conn, table.name, business_id)
            row = await conn.fetchrow(
                f"INSERT INTO {table.name} (id, business_id, {columns}) "
                f"VALUES ($1, $2, {params}) RETURNING *",
                row_id,
                business_id,
                *(values[c] for c in table.columns),
            )
        return dict(row)

    async def get(
        self, table: CatalogueTable, business_id: UUID, row_id: UUID
    ) -> dict[str, Any] | None:
        query = (
            f"SELECT * FROM {table.name} WHERE id = $1 AND business_id = $2 AND deleted_at IS NULL"
        )
        return await fetch_dict(self.db, query, row_id, business_id)

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

    async def booking_policy(self, business_id: UUID) -> dict[str, Any]:
        policy: dict[str, Any] = await self.db.fetchval(
            "SELECT booking_policy FROM businesses WHERE id = $1", business_id
        )
        return policy or {}

    async def read_snapshot_rows(self, business_id: UUID, now: datetime) -> SnapshotRows:
        async with self.db.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            return await _read_snapshot_rows(conn, business_id, now)

    @contextlib.asynccontextmanager
    async def unpublished_snapshot_rows(
        self, business_id: UUID, now: datetime
    ) -> AsyncIterator[SnapshotRows | None]:
        """The business's snapshot rows if a committed change is not in its snapshot yet
        (None otherwise), with the business's publishing turn held until the block ends.

        One publisher per business at a time, and each reads after the one before it
        wrote: snapshots reach the bucket in the order they were read, so the last one
        written is never older than another. When the block ends without an error, the
        changes the rows include are forgotten.
        """
        async with self.db.acquire() as conn:
            # A session-level lock, so the snapshot below can be read in a transaction
            # of its own that starts after the lock is ours; the pool's reset frees it.
            mark_session_changed(conn)
            await conn.execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))", f"catalogue:{business_id}"
            )
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                changes = await conn.fetch(
                    "SELECT seq FROM catalogue_changes WHERE business_id = $1", business_id
                )
                rows = await _read_snapshot_rows(conn, business_id, now) if changes else None
            yield rows
            if changes:
                await conn.execute(
                    "DELETE FROM catalogue_changes WHERE seq = ANY($1::bigint[])",
                    [r["seq"] for r in changes],
                )

    async def businesses_with_unpublished_changes(self, limit: int) -> list[UUID]:
        rows = await self.db.fetch(
            "SELECT business_id FROM catalogue_changes GROUP BY business_id "
            "ORDER BY min(seq) LIMIT $1",
            limit,
        )
        return [r["business_id"] for r in rows]

    async def note_changes_of_businesses_besides(self, published: list[UUID]) -> int:
        """Mark every business but the `published` ones as changed; returns how many."""
        status: str = await self.db.execute(
            "INSERT INTO catalogue_changes (business_id) "
            "SELECT id FROM businesses WHERE NOT (id = ANY($1::uuid[]))",
            published,
        )
        return int(status.rsplit(" ", 1)[1])

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
        self, table: CatalogueTable, business_id: UUID, row_id: UUID, change: Change
    ) -> dict[str, Any] | None:
        """Apply `change` to the row under a lock; None if there is no such live row.

        The lock makes concurrent PATCHes of different fields queue instead of each
        writing back a stale copy of the fields the other one changed.
        """
        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(table.columns, start=3))
        async with self.db.acquire() as conn, conn.transaction():
            current = await _lock_live_row(conn, table, business_id, row_id)
            if current is None:
                return None
            values = await change(current)
            row = await conn.fetchrow(
                f"UPDATE {table.name} SET {assignments}, updated_at = now() "
                "WHERE id = $1 AND business_id = $2 RETURNING *",
                row_id,
                business_id,
                *(values[c] for c in table.columns),
            )
        return dict(row)

    async def soft_delete_unless_booked(
        self, table: CatalogueTable, business_id: UUID, row_id: UUID
    ) -> str:
        """'deleted', 'missing' or 'booked' (live bookings still use the row)."""
        async with self.db.acquire() as conn, conn.transaction():
            if await _lock_live_row(conn, table, business_id, row_id) is None:
                return "missing"
            if table.booking_column:
                # The row lock waits for a booking being inserted against this row (its
                # foreign key holds FOR KEY SHARE until it commits), so that booking is
                # seen here. A booking inserted after this commits must itself check
                # deleted_at: the foreign key alone still accepts a soft-deleted row.
                booked = await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM bookings WHERE {table.booking_column} = $1 "
                    "AND status IN ('pending', 'confirmed', 'in_progress') AND ends_at > now())",
                    row_id,
                )
                if booked:
                    return "booked"
            await conn.execute(f"UPDATE {table.name} SET deleted_at = now() WHERE id = $1", row_id)
            for other, column in table.listed_in:
                await conn.execute(
                    f"UPDATE {other} SET {column} = array_remove({column}, $1), "
                    f"updated_at = now() WHERE business_id = $2 AND $1 = ANY({column})",
                    row_id,
                    business_id,
                )
            return "deleted"
