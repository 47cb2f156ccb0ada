"""SQL for webhook endpoints; every query is scoped to its business."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from calendence.storage import Repository, fetch_dict

_COLUMNS = """id, seq, business_id, url, description, events, enabled, disabled_reason,
    disabled_at, failing_since, previous_secret_expires_at, created_at, updated_at"""


class EndpointRepository(Repository):
    async def insert(
        self, business_id: UUID, endpoint_id: UUID, fields: dict[str, Any], secret: str
    ) -> dict[str, Any]:
        row = await self.db.fetchrow(
            f"""
            INSERT INTO webhook_endpoints
                (id, business_id, url, description, events, enabled, secret,
                 disabled_reason, disabled_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7,
                    CASE WHEN $6 THEN NULL ELSE 'disabled by request' END,
                    CASE WHEN $6 THEN NULL ELSE now() END)
            RETURNING {_COLUMNS}
            """,
            endpoint_id,
            business_id,
            *_field_values(fields),
            secret,
        )
        return dict(row)

    async def get(self, business_id: UUID, endpoint_id: UUID) -> dict[str, Any] | None:
        query = f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND business_id = $2"
        return await fetch_dict(self.db, query, endpoint_id, business_id)

    async def list_page(
        self, business_id: UUID, after_seq: int, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            f"""
            SELECT {_COLUMNS} FROM webhook_endpoints
            WHERE business_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
            """,
            business_id,
            after_seq,
            limit,
        )
        return [dict(r) for r in rows]

    async def update(
        self, business_id: UUID, endpoint_id: UUID, fields: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Save the fields; disabling records why, enabling clears the failure record."""
        row = await self.db.fetchrow(
            f"""
            UPDATE webhook_endpoints SET
                url = $3, description = $4, events = $5, enabled = $6, updated_at = now(),
                disabled_reason = CASE
                    WHEN $6 THEN NULL WHEN enabled THEN 'disabled by request'
                    ELSE disabled_reason END,
                disabled_at = CASE
                    WHEN $6 THEN NULL WHEN enabled THEN now() ELSE disabled_at END,
                failing_since = CASE WHEN $6 AND NOT enabled THEN NULL ELSE failing_since END
            WHERE id = $1 AND business_id = $2
            RETURNING {_COLUMNS}
            """,
            endpoint_id,
            business_id,
            *_field_values(fields),
        )
        return dict(row) if row else None

    async def delete(self, business_id: UUID, endpoint_id: UUID) -> bool:
        deleted = await self.db.fetchval(
            "DELETE FROM webhook_endpoints WHERE id = $1 AND business_id = $2 RETURNING id",
            endpoint_id,
            business_id,
        )
        return deleted is not None

    async def rotate_secret(
        self, business_id: UUID, endpoint_id: UUID, secret: str, overlap: timedelta
    ) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            f"""
            UPDATE webhook_endpoints SET
                previous_secret = secret, previous_secret_expires_at = now() + $4::interval,
                secret = $3, updated_at = now()
            WHERE id = $1 AND business_id = $2
            RETURNING {_COLUMNS}
            """,
            endpoint_id,
            business_id,
            secret,
            overlap,
        )
        return dict(row) if row else None


def _field_values(fields: dict[str, Any]) -> tuple[Any, ...]:
    """An endpoint's stored fields in the order the INSERT and UPDATE take them ($3-$6)."""
    return fields["url"], fields["description"], fields["events"], fields["enabled"]
