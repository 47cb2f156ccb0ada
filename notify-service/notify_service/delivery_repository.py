"""SQL for deliveries: fan an event out to its endpoints, claim due work, record attempts.

Every replica claims from the same tables. A claim leases the delivery (its
`next_attempt_at` moves one lease ahead), so a replica that dies mid-attempt only
delays it until the lease runs out; a result comes back with the lease's token, and one
whose lease was taken over meanwhile is recorded but no longer steers the delivery.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from calendence.storage import Repository

from notify_service.schedule import DISABLE_AFTER


@dataclass(frozen=True)
class Claim:
    delivery_id: UUID
    endpoint_id: UUID
    event_id: UUID
    attempt: int
    lease_token: UUID
    url: str
    signing_secrets: tuple[str, ...]
    body: bytes


@dataclass(frozen=True)
class AttemptResult:
    attempted_at: datetime
    latency_ms: float
    status_code: int | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_body(event: dict[str, Any]) -> bytes:
    """The Standard Webhooks body: the event's type, timestamp and data."""
    return orjson.dumps(
        {"type": event["type"], "timestamp": event["timestamp"], "data": event["data"]}
    )


def order_key(event: dict[str, Any]) -> str:
    """Events with one key are delivered in order: the booking's id."""
    data = event.get("data")
    subject = data.get("id") if isinstance(data, dict) else None
    return str(subject or event["id"])


class DeliveryRepository(Repository):
    async def record_events(self, events: list[tuple[dict[str, Any], int]]) -> dict[str, int]:
        """Store events (with their stream positions) and one delivery per subscribed,
        enabled endpoint, all in one transaction.

        Returns how many deliveries each newly stored event made; an event stored
        before (a JetStream redelivery) only counts one more receipt and is left out.
        """
        unique = list({event["id"]: (event, seq) for event, seq in events}.values())
        # One statement is one transaction: no BEGIN and COMMIT round trips around it.
        rows = await self.db.fetch(
            """
            WITH incoming AS (
                SELECT * FROM unnest(
                    $1::uuid[], $2::text[], $3::uuid[], $4::jsonb[], $5::bigint[],
                    $6::bytea[], $7::text[]
                ) AS t(event_id, type, business_id, payload, stream_seq, body, order_key)
            ), stored AS (
                INSERT INTO event_receipts
                    (event_id, type, business_id, payload, stream_seq, webhook_body)
                SELECT event_id, type, business_id, payload, stream_seq, body FROM incoming
                ON CONFLICT (event_id) DO UPDATE
                    SET deliveries = event_receipts.deliveries + 1
                RETURNING event_id, deliveries = 1 AS first
            ), made AS (
                INSERT INTO webhook_deliveries (id, endpoint_id, event_id, order_key, order_seq)
                SELECT gen_random_uuid(), e.id, i.event_id, i.order_key, i.stream_seq
                FROM stored s
                JOIN incoming i ON i.event_id = s.event_id
                JOIN webhook_endpoints e ON e.business_id = i.business_id AND e.enabled
                    AND ('*' = ANY (e.events) OR i.type = ANY (e.events))
                WHERE s.first
                RETURNING event_id
            )
            SELECT s.event_id, count(m.event_id) AS deliveries
            FROM stored s LEFT JOIN made m ON m.event_id = s.event_id
            WHERE s.first
            GROUP BY s.event_id
            """,
            [UUID(e["id"]) for e, _ in unique],
            [e["type"] for e, _ in unique],
            [UUID(e["business_id"]) for e, _ in unique],
            [e for e, _ in unique],
            [seq for _, seq in unique],
            [webhook_body(e) for e, _ in unique],
            [order_key(e) for e, _ in unique],
        )
        return {str(row["event_id"]): row["deliveries"] for row in rows}

    async def claim(
        self, want: int, per_endpoint: int, watermark: int, lease: timedelta
    ) -> list[Claim]:
        """Lease up to `want` due deliveries, never more than `per_endpoint` in flight
        for one endpoint, and never one whose booking has an earlier delivery pending
        to the same endpoint or that came after `watermark` (an event not every
        earlier one of which is stored yet)."""
        token = uuid.uuid4()
        # One round trip: the function takes the claim lock, then claims (see its
        # migration).
        rows = await self.db.fetch(
            "SELECT * FROM claim_webhook_deliveries($1, $2, $3, $4, $5)",
            want,
            per_endpoint,
            watermark,
            lease,
            token,
        )
        return [
            Claim(
                delivery_id=row["id"],
                endpoint_id=row["endpoint_id"],
                event_id=row["event_id"],
                attempt=row["attempt_count"],
                lease_token=token,
                url=row["url"],
                signing_secrets=tuple(
                    s for s in (row["secret"], row["previous_secret"]) if s is not None
                ),
                body=row["webhook_body"] or webhook_body(row["payload"]),
            )
            for row in rows
        ]

    async def finish(
        self, claim: Claim, result: AttemptResult, retry_in: timedelta | None
    ) -> str | None:
        """Record an attempt and what follows from it, in one statement: the delivery
        succeeded, waits for its next attempt or has failed for good; the endpoint's
        failure run starts, ends, or (5 days in) disables it. A result whose lease was
        taken over meanwhile is recorded but steers nothing. Returns the reason when this
        failure disabled the endpoint."""
        reason = f"every delivery attempt failed for {DISABLE_AFTER.days} days; last: " + (
            result.error or f"HTTP {result.status_code}"
        )
        disabled = await self.db.fetchval(
            """
            WITH target AS (
                SELECT id, endpoint_id, lease_token = $2 AS current
                FROM webhook_deliveries WHERE id = $1 FOR UPDATE
            ), attempt AS (
                INSERT INTO webhook_attempts
                    (delivery_id, attempt, attempted_at, status_code, latency_ms, error)
                SELECT id, $3, $4, $5, $6, $7 FROM target
                ON CONFLICT DO NOTHING
            ), delivery AS (
                UPDATE webhook_deliveries d SET
                    status = CASE WHEN $8 THEN 'succeeded'
                                  WHEN $9::interval IS NULL THEN 'failed'
                                  ELSE 'pending' END,
                    completed_at = CASE WHEN $8 OR $9::interval IS NULL THEN now() END,
                    next_attempt_at = coalesce(now() + $9::interval, d.next_attempt_at),
                    leased_until = NULL, lease_token = NULL
                FROM target WHERE d.id = target.id AND target.current
            ), endpoint AS (
                SELECT e.id, e.failing_since,
                    e.enabled AND NOT $8 AND coalesce(e.failing_since <= now() - $10::interval,
                                                      false) AS give_up
                FROM webhook_endpoints e JOIN target ON e.id = target.endpoint_id
            ), changed AS (
                UPDATE webhook_endpoints e SET
                    failing_since = CASE WHEN $8 THEN NULL ELSE coalesce(e.failing_since, $4) END,
                    enabled = e.enabled AND NOT x.give_up,
                    disabled_at = CASE WHEN x.give_up THEN now() ELSE e.disabled_at END,
                    disabled_reason = CASE WHEN x.give_up THEN $11 ELSE e.disabled_reason END
                FROM endpoint x
                WHERE e.id = x.id AND NOT ($8 AND x.failing_since IS NULL)
                RETURNING x.give_up
            )
            SELECT coalesce((SELECT give_up FROM changed), false)
            """,
            claim.delivery_id,
            claim.lease_token,
            claim.attempt,
            result.attempted_at,
            result.status_code,
            result.latency_ms,
            result.error,
            result.succeeded,
            retry_in,
            DISABLE_AFTER,
            reason,
        )
        return reason if disabled else None

    async def release(self, lease_token: UUID, delivery_id: UUID) -> None:
        """Give back a lease whose attempt was interrupted (a shutdown): due at once."""
        await self.db.execute(
            """
            UPDATE webhook_deliveries SET next_attempt_at = now(), leased_until = NULL,
                lease_token = NULL, attempt_count = attempt_count - 1
            WHERE id = $1 AND lease_token = $2
            """,
            delivery_id,
            lease_token,
        )

    async def next_due(self) -> datetime | None:
        """When the earliest pending delivery falls due (a hint for sleeping)."""
        moment: datetime | None = await self.db.fetchval(
            "SELECT min(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'"
        )
        return moment

    async def purge_completed(self, older_than: timedelta) -> int:
        deleted = await self.db.fetchval(
            """
            WITH gone AS (
                DELETE FROM webhook_deliveries WHERE completed_at < now() - $1::interval
                RETURNING 1
            ) SELECT count(*) FROM gone
            """,
            older_than,
        )
        return int(deleted)

    async def list_page(
        self, business_id: UUID, endpoint_id: UUID, before_seq: int | None, limit: int
    ) -> list[dict[str, Any]] | None:
        """The endpoint's deliveries, newest first, each with its attempts; None when
        the endpoint is not this business's."""
        async with self.db.acquire() as connection:
            owned = await connection.fetchval(
                "SELECT true FROM webhook_endpoints WHERE id = $1 AND business_id = $2",
                endpoint_id,
                business_id,
            )
            if not owned:
                return None
            rows = await connection.fetch(
                f"""
                SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d
                JOIN event_receipts r ON r.event_id = d.event_id
                WHERE d.endpoint_id = $1 AND ($2::bigint IS NULL OR d.seq < $2)
                ORDER BY d.seq DESC LIMIT $3
                """,
                endpoint_id,
                before_seq,
                limit,
            )
            return await _with_attempts(connection, rows)

    async def redeliver(
        self, business_id: UUID, endpoint_id: UUID, event_id: UUID
    ) -> tuple[str, dict[str, Any] | None]:
        """A new delivery of a stored event of this business, outside the per-booking
        order. Returns what is missing ('endpoint', 'event', 'enabled') or the delivery;
        a redelivery still pending is returned instead of making another."""
        async with self.db.acquire() as connection, connection.transaction():
            enabled = await connection.fetchval(
                "SELECT enabled FROM webhook_endpoints WHERE id = $1 AND business_id = $2 "
                "FOR SHARE",
                endpoint_id,
                business_id,
            )
            if enabled is None:
                return "endpoint", None
            if not enabled:
                return "enabled", None
            event = await connection.fetchrow(
                "SELECT event_id, payload FROM event_receipts "
                "WHERE event_id = $1 AND business_id = $2",
                event_id,
                business_id,
            )
            if event is None:
                return "event", None
            delivery_id = await connection.fetchval(
                """
                SELECT id FROM webhook_deliveries
                WHERE endpoint_id = $1 AND event_id = $2 AND order_seq IS NULL
                  AND status = 'pending'
                """,
                endpoint_id,
                event_id,
            )
            if delivery_id is None:
                delivery_id = await connection.fetchval(
                    """
                    INSERT INTO webhook_deliveries (id, endpoint_id, event_id, order_key)
                    VALUES (gen_random_uuid(), $1, $2, $3) RETURNING id
                    """,
                    endpoint_id,
                    event_id,
                    order_key(event["payload"]),
                )
            rows = await connection.fetch(
                f"""
                SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d
                JOIN event_receipts r ON r.event_id = d.event_id WHERE d.id = $1
                """,
                delivery_id,
            )
            return "", (await _with_attempts(connection, rows))[0]


_DELIVERY_COLUMNS = """d.id, d.seq, d.endpoint_id, d.event_id, r.type AS event_type, d.status,
    d.attempt_count, d.next_attempt_at, d.created_at, d.completed_at,
    d.order_seq IS NULL AS redelivery"""


async def _with_attempts(
    connection: asyncpg.Connection, rows: list[asyncpg.Record]
) -> list[dict[str, Any]]:
    deliveries = [dict(r) | {"attempts": []} for r in rows]
    by_id = {d["id"]: d for d in deliveries}
    for attempt in await connection.fetch(
        """
        SELECT delivery_id, attempt, attempted_at, status_code, latency_ms, error
        FROM webhook_attempts WHERE delivery_id = ANY ($1::uuid[]) ORDER BY attempt
        """,
        list(by_id),
    ):
        by_id[attempt["delivery_id"]]["attempts"].append(dict(attempt))
    return deliveries
