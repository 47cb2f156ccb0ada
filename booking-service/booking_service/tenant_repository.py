"""SQL for hubs, businesses and API keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from calendence.schemas.scheduling import DEFAULT_POLICY

from booking_service.catalogue_repository import take_turn
from booking_service.reminder_repository import ReminderSchedule


@dataclass(frozen=True)
class StoredKey:
    id: UUID
    kind: str
    hub_id: UUID | None
    business_id: UUID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    # The key's business's allowed origins (CORS); only `find_and_touch_key` reads them.
    allowed_origins: tuple[str, ...] = ()


_KEY_COLUMNS = "id, kind, hub_id, business_id, created_at, expires_at, revoked_at, last_used_at"
_BUSINESS_COLUMNS = (
    "id, hub_id, name, success_url, cancel_url, allowed_origins, booking_policy, reminders, "
    "client_emails, seq, created_at, updated_at"
)


def _business_values(fields: dict[str, Any]) -> tuple[Any, ...]:
    """A business's editable columns, in the order INSERT and UPDATE bind them."""
    return (
        fields["name"],
        fields.get("success_url"),
        fields.get("cancel_url"),
        list(fields.get("allowed_origins") or ()),
        fields.get("booking_policy") or DEFAULT_POLICY,
    )


class TenantRepository:
    def __init__(self, db: asyncpg.Pool, reminders: ReminderSchedule | None = None) -> None:
        self.db = db
        # Re-arms the business's bookings' reminders when its reminders change.
        self.reminders = reminders

    async def insert_hub(self, hub_id: UUID, name: str) -> dict[str, Any]:
        row = await self.db.fetchrow(
            "INSERT INTO hubs (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
            hub_id,
            name,
        )
        return dict(row)

    async def get_hub(self, hub_id: UUID) -> dict[str, Any] | None:
        row = await self.db.fetchrow("SELECT id, name, created_at FROM hubs WHERE id = $1", hub_id)
        return dict(row) if row else None

    async def insert_business(
        self, business_id: UUID, hub_id: UUID | None, fields: dict[str, Any]
    ) -> dict[str, Any]:
        async with self.db.acquire() as conn, conn.transaction():
            # A hub's businesses page by seq like the catalogue does.
            await take_turn(conn, "businesses", hub_id or business_id)
            row = await conn.fetchrow(
                f"""
                INSERT INTO businesses
                    (id, hub_id, name, success_url, cancel_url, allowed_origins,
                     booking_policy, reminders, client_emails)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                RETURNING {_BUSINESS_COLUMNS}
                """,
                business_id,
                hub_id,
                *_business_values(fields),
                *_messaging_columns(fields),
            )
        return dict(row)

    async def get_business(self, business_id: UUID) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            f"SELECT {_BUSINESS_COLUMNS} FROM businesses WHERE id = $1", business_id
        )
        return dict(row) if row else None

    async def update_business(
        self,
        business_id: UUID,
        merge: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any] | None:
        """Apply `merge` (current row -> new editable fields) under the row's lock."""
        async with self.db.acquire() as conn, conn.transaction():
            current = await conn.fetchrow(
                f"SELECT {_BUSINESS_COLUMNS} FROM businesses WHERE id = $1 FOR UPDATE",
                business_id,
            )
            if current is None:
                return None
            fields = merge(dict(current))
            row = await conn.fetchrow(
                f"""
                UPDATE businesses
                SET name = $2, success_url = $3, cancel_url = $4, allowed_origins = $5,
                    booking_policy = $6, reminders = $7, client_emails = $8, updated_at = now()
                WHERE id = $1
                RETURNING {_BUSINESS_COLUMNS}
                """,
                business_id,
                *_business_values(fields),
                *_messaging_columns(fields),
            )
            if self.reminders is not None and row["reminders"] != current["reminders"]:
                await self.reminders.rearm_business(conn, business_id)
        return dict(row)

    async def list_businesses(
        self, hub_id: UUID, after_seq: int, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            f"""
            SELECT {_BUSINESS_COLUMNS}
            FROM businesses WHERE hub_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
            """,
            hub_id,
            after_seq,
            limit,
        )
        return [dict(r) for r in rows]

    async def insert_key(
        self,
        *,
        key_id: UUID,
        kind: str,
        key_hash: bytes,
        display_prefix: str,
        name: str | None,
        hub_id: UUID | None,
        business_id: UUID | None,
        expires_at: datetime | None,
    ) -> StoredKey:
        row = await self.db.fetchrow(
            f"""
            INSERT INTO api_keys (id, kind, key_hash, display_prefix, name, hub_id, business_id,
                                  expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            RETURNING {_KEY_COLUMNS}
            """,
            key_id,
            kind,
            key_hash,
            display_prefix,
            name,
            hub_id,
            business_id,
            expires_at,
        )
        return StoredKey(**dict(row))

    async def find_and_touch_key(self, key_hash: bytes) -> StoredKey | None:
        """The key, with its business's allowed origins, as it was before this use; a
        live one (not revoked, not expired) has its last use recorded, once a minute at
        most, so that a hot key does not turn every request into a write. One round trip.
        """
        row = await self.db.fetchrow(
            """
            WITH found AS (
                SELECT k.id, k.kind, k.hub_id, k.business_id, k.created_at, k.expires_at,
                       k.revoked_at, k.last_used_at,
                       coalesce(b.allowed_origins, '{}') AS allowed_origins
                FROM api_keys k LEFT JOIN businesses b ON b.id = k.business_id
                WHERE k.key_hash = $1),
                 touched AS (
                UPDATE api_keys SET last_used_at = now()
                WHERE id = (SELECT id FROM found) AND revoked_at IS NULL
                  AND (expires_at IS NULL OR expires_at > now())
                  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute'))
            SELECT * FROM found
            """,
            key_hash,
        )
        if row is None:
            return None
        found = dict(row)
        found["allowed_origins"] = tuple(found["allowed_origins"])
        return StoredKey(**found)

    async def get_key(self, key_id: UUID) -> StoredKey | None:
        row = await self.db.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = $1", key_id)
        return StoredKey(**dict(row)) if row else None

    async def revoke_key(self, key_id: UUID) -> None:
        await self.db.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", key_id
        )


def _messaging_columns(fields: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The reminders and client emails columns of a business's fields."""
    return list(fields.get("reminders") or ()), list(fields.get("client_emails") or ())
