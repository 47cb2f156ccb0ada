"""SQL for time off (a staff member away) and closures (a location shut)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from calendence.storage import Repository, fetch_dict

from booking_service.catalogue_repository import take_turn

_COLUMNS = "id, staff_id, location_id, starts_at, ends_at, reason, seq, created_at"


class TimeOffRepository(Repository):
    async def insert(
        self, business_id: UUID, time_off_id: UUID, fields: dict[str, Any]
    ) -> tuple[dict[str, Any], list[UUID]] | None:
        """The new row and the live bookings inside it; None if the staff member or
        location is not a live one of this business.

        The subject's row is locked FOR KEY SHARE, so it cannot be deleted meanwhile.
        """
        subject = "staff" if fields["staff_id"] is not None else "locations"
        subject_id = fields["staff_id"] or fields["location_id"]
        column = "staff_id" if subject == "staff" else "location_id"
        async with self.db.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                f"SELECT 1 FROM {subject} WHERE id = $1 AND business_id = $2 "
                "AND deleted_at IS NULL FOR KEY SHARE",
                subject_id,
                business_id,
            )
            if not found:
                return None
            await take_turn(conn, "time_off", business_id)
            row = await conn.fetchrow(
                f"""
                INSERT INTO time_off (id, business_id, staff_id, location_id, starts_at,
                                      ends_at, reason)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                RETURNING {_COLUMNS}
                """,
                time_off_id,
                business_id,
                fields["staff_id"],
                fields["location_id"],
                fields["starts_at"],
                fields["ends_at"],
                fields["reason"],
            )
            conflicting = await conn.fetch(
                f"""
                SELECT id FROM bookings
                WHERE business_id = $1 AND {column} = $2
                  AND status IN ('pending', 'confirmed', 'in_progress')
                  AND tstzrange(starts_at, ends_at) && tstzrange($3, $4)
                ORDER BY starts_at, id
                """,
                business_id,
                subject_id,
                fields["starts_at"],
                fields["ends_at"],
            )
        return dict(row), [r["id"] for r in conflicting]

    async def get(self, business_id: UUID, time_off_id: UUID) -> dict[str, Any] | None:
        query = f"SELECT {_COLUMNS} FROM time_off WHERE id = $1 AND business_id = $2"
        return await fetch_dict(self.db, query, time_off_id, business_id)

    async def list_page(
        self, business_id: UUID, filters: dict[str, Any], after_seq: int, limit: int
    ) -> list[dict[str, Any]]:
        conditions = ["business_id = $1", "seq > $2"]
        params: list[Any] = [business_id, after_seq]
        for condition, value in (
            ("staff_id = ${}", filters.get("staff_id")),
            ("location_id = ${}", filters.get("location_id")),
            # Overlapping [from, to).
            ("ends_at > ${}", filters.get("from")),
            ("starts_at < ${}", filters.get("to")),
        ):
            if value is not None:
                params.append(value)
                conditions.append(condition.format(len(params)))
        params.append(limit)
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM time_off WHERE {' AND '.join(conditions)} "
            f"ORDER BY seq LIMIT ${len(params)}",
            *params,
        )
        return [dict(r) for r in rows]

    async def delete(self, business_id: UUID, time_off_id: UUID) -> bool:
        deleted = await self.db.fetchval(
            "DELETE FROM time_off WHERE id = $1 AND business_id = $2 RETURNING true",
            time_off_id,
            business_id,
        )
        return bool(deleted)
