"""SQL for manage links and calendar feeds: the keys that sign manage links, staff feed
tokens (stored hashed), and the bookings a link or a feed shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from calendence.storage import Repository

from booking_service.booking_repository import _SELECT as BOOKING_SELECT


@dataclass(frozen=True)
class LinkKey:
    id: int
    secret: bytes


@dataclass(frozen=True)
class FeedOwner:
    business_id: UUID
    staff_id: UUID
    staff_name: str


class ManageRepository(Repository):
    async def link_keys(self) -> list[LinkKey]:
        """The keys that still verify, newest first."""
        rows = await self.db.fetch(
            "SELECT id, secret FROM manage_link_keys WHERE retired_at IS NULL ORDER BY id DESC"
        )
        return [LinkKey(r["id"], bytes(r["secret"])) for r in rows]

    async def add_link_key(self, secret: bytes, *, only_if_none: bool) -> None:
        """A new newest key; with `only_if_none`, only when no key verifies yet (replicas
        starting together make one between them)."""
        async with self.db.acquire() as connection, connection.transaction():
            await connection.execute("LOCK TABLE manage_link_keys IN EXCLUSIVE MODE")
            if only_if_none and await connection.fetchval(
                "SELECT count(*) FROM manage_link_keys WHERE retired_at IS NULL"
            ):
                return
            await connection.execute(
                "INSERT INTO manage_link_keys (id, secret) "
                "SELECT coalesce(max(id), 0) + 1, $1 FROM manage_link_keys",
                secret,
            )

    async def retire_link_keys_but_newest(self) -> int:
        """Retire every key but the newest: links they signed stop working."""
        retired: int = await self.db.fetchval(
            """
            WITH retired AS (
                UPDATE manage_link_keys SET retired_at = now()
                WHERE retired_at IS NULL AND id < (SELECT max(id) FROM manage_link_keys)
                RETURNING 1)
            SELECT count(*) FROM retired
            """
        )
        return retired

    async def booking(self, booking_id: UUID) -> dict[str, Any] | None:
        """A booking by id alone (a manage link names no business), with its business's
        web origins."""
        row = await self.db.fetchrow(
            f"SELECT booking.*, biz.allowed_origins FROM ({BOOKING_SELECT} WHERE b.id = $1) "
            "booking JOIN businesses biz ON biz.id = booking.business_id",
            booking_id,
        )
        return dict(row) if row else None

    async def save_feed(
        self, business_id: UUID, staff_id: UUID, token_hash: bytes
    ) -> datetime | None:
        """Make or replace the staff member's feed token; None when no such staff."""
        created: datetime | None = await self.db.fetchval(
            """
            INSERT INTO calendar_feeds (staff_id, business_id, token_hash)
            SELECT id, business_id, $3 FROM staff
            WHERE id = $2 AND business_id = $1 AND deleted_at IS NULL
            ON CONFLICT (staff_id) DO UPDATE
                SET token_hash = excluded.token_hash, created_at = now()
            RETURNING created_at
            """,
            business_id,
            staff_id,
            token_hash,
        )
        return created

    async def feed_owner(self, token_hash: bytes) -> FeedOwner | None:
        row = await self.db.fetchrow(
            """
            SELECT f.business_id, f.staff_id, s.name
            FROM calendar_feeds f JOIN staff s ON s.id = f.staff_id
            WHERE f.token_hash = $1 AND s.deleted_at IS NULL
            """,
            token_hash,
        )
        return FeedOwner(row["business_id"], row["staff_id"], row["name"]) if row else None

    async def staff_bookings(
        self, business_id: UUID, staff_id: UUID, start: datetime, end: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """The staff member's bookings starting in [start, end), cancelled ones too."""
        rows = await self.db.fetch(
            BOOKING_SELECT + "WHERE b.business_id = $1 AND b.staff_id = $2 "
            "AND b.starts_at >= $3 AND b.starts_at < $4 ORDER BY b.starts_at LIMIT $5",
            business_id,
            staff_id,
            start,
            end,
            limit,
        )
        return [dict(r) for r in rows]
