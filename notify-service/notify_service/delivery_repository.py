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

from notify_service.message_repository import NewMessage
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


@dataclass(frozen=True)
class Finished:
    """An attempt that ended, and when the delivery is due again (None: never)."""

    claim: Claim
    result: AttemptResult
    retry_in: timedelta | None


@dataclass(frozen=True)
class MessageLease:
    """Client messages stored already claimed by the replica that stores them."""

    token: UUID
    count: int  # the first this many of the messages stored
    lease: timedelta


@dataclass(frozen=True)
class StoredEvents:
    # How many webhook deliveries each newly stored event made, by event id.
    deliveries: dict[str, int]
    # The messages stored leased (new, and the batch made no delivery), with their ids.
    leased: list[tuple[NewMessage, UUID]]


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
    async def record_events(
        self,
        events: list[tuple[dict[str, Any], int]],
        messages: list[NewMessage],
        leased: MessageLease | None = None,
    ) -> StoredEvents:
        """Store events (with their stream positions), one delivery per subscribed,
        enabled endpoint and the client messages the events call for, all in one
        transaction. With `leased`, its first `count` messages are stored already
        claimed by the caller, their first attempt under way (as the mailer's claim
        would lease them, without that statement), unless the events made webhook
        deliveries: webhooks go first, and those messages wait for the claims.

        Returns how many deliveries each newly stored event made; an event stored
        before (a JetStream redelivery) only counts one more receipt and is left out,
        and its message is the one queued the first time (not leased again).
        """
        unique = list({event["id"]: (event, seq) for event, seq in events}.values())
        count = leased.count if leased is not None else 0
        ids = [uuid.uuid4() for _ in messages]
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
            ), queued AS (
                INSERT INTO client_messages
                    (id, event_id, business_id, booking_id, kind, recipient, subject,
                     lease_token, attempt_count, next_attempt_at)
                SELECT q.id, q.event_id, q.business_id, q.booking_id, q.kind, q.recipient,
                       q.subject,
                       CASE WHEN l.leased THEN $14::uuid END,
                       CASE WHEN l.leased THEN 1 ELSE 0 END,
                       now() + CASE WHEN l.leased THEN $16::interval ELSE '0s' END
                FROM unnest(
                    $17::uuid[], $8::uuid[], $9::uuid[], $10::uuid[], $11::text[],
                    $12::text[], $13::text[]
                ) WITH ORDINALITY
                    AS q(id, event_id, business_id, booking_id, kind, recipient, subject, n)
                -- Webhooks go first: a batch that made deliveries leases no message. Nor
                -- is one leased for an event received before (its row is not returned).
                CROSS JOIN LATERAL (
                    SELECT q.n <= $15 AND NOT EXISTS (SELECT 1 FROM made)
                        AND EXISTS (SELECT 1 FROM stored s WHERE s.event_id = q.event_id
                                    AND s.first) AS leased
                ) l
                ON CONFLICT (event_id) DO NOTHING
                RETURNING id, lease_token IS NOT NULL AS leased
            )
            SELECT s.event_id, count(m.event_id) AS deliveries,
                   (SELECT array_agg(id) FROM queued WHERE leased) AS leased
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
            [m.event_id for m in messages],
            [m.business_id for m in messages],
            [m.booking_id for m in messages],
            [m.kind for m in messages],
            [m.recipient for m in messages],
            [m.subject for m in messages],
            leased.token if leased is not None else None,
            count,
            leased.lease if leased is not None else timedelta(0),
            ids,
        )
        # Leased messages are only those of events received now, each with its row.
        leased_ids = set(rows[0]["leased"] or ()) if rows else set()
        return StoredEvents(
            deliveries={str(row["event_id"]): row["deliveries"] for row in rows},
            leased=[(m, i) for m, i in zip(messages[:count], ids, strict=False) if i in leased_ids],
        )

    async def finish_and_claim(
        self,
        finished: list[Finished],
        want: int,
        per_endpoint: int,
        watermark: int,
        lease: timedelta,
    ) -> tuple[list[Claim], list[tuple[Finished, str]]]:
        """Record finished attempts, then lease up to `want` due deliveries, in one
        round trip. Returns the claims, and the attempts whose failure disabled their
        endpoint, each with the reason recorded on it.

        Recording an attempt: the delivery succeeded, waits for its next attempt or
        has failed for good; the endpoint's failure run starts, ends, or (5 days in)
        disables it. A result whose lease was taken over meanwhile is recorded but
        steers nothing.

        Claiming: never more than `per_endpoint` in flight for one endpoint, and never
        a delivery whose booking has an earlier delivery pending to the same endpoint
        or that came after `watermark` (an event not every earlier one of which is
        stored yet)."""
        token = uuid.uuid4()
        reasons = [
            f"every delivery attempt failed for {DISABLE_AFTER.days} days; last: "
            + (f.result.error or f"HTTP {f.result.status_code}")
            for f in finished
        ]
        # One round trip: the function records each result, takes the claim lock, then
        # claims (see its migration).
        rows = await self.db.fetch(
            """
            SELECT * FROM finish_and_claim_webhook_deliveries(
                $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
            """,
            [f.claim.delivery_id for f in finished],
            [f.claim.lease_token for f in finished],
            [f.claim.attempt for f in finished],
            [f.result.attempted_at for f in finished],
            [f.result.status_code for f in finished],
            [f.result.latency_ms for f in finished],
            [f.result.error for f in finished],
            [f.retry_in for f in finished],
            DISABLE_AFTER,
            reasons,
            want,
            per_endpoint,
            watermark,
            lease,
            token,
        )
        disabling = {row["id"] for row in rows if row["finished"]}
        disabled = [
            (f, reason)
            for f, reason in zip(finished, reasons, strict=True)
            if f.claim.delivery_id in disabling
        ]
        claims = [
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
            if not row["finished"]
        ]
        return claims, disabled

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
            return _with_attempts(rows)

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
            return "", _with_attempts(rows)[0]


# A delivery with its attempts, read by one statement: one snapshot, so an attempt is
# never listed without the outcome it gave the delivery (recorded in one transaction).
# The attempts as anonymous rows of named columns: a column the table gains later
# changes nothing a running replica decodes.
_DELIVERY_COLUMNS = """d.id, d.seq, d.endpoint_id, d.event_id, r.type AS event_type, d.status,
    d.attempt_count, d.next_attempt_at, d.created_at, d.completed_at,
    d.order_seq IS NULL AS redelivery,
    ARRAY(SELECT ROW(a.attempt, a.attempted_at, a.status_code, a.latency_ms, a.error)
          FROM webhook_attempts a WHERE a.delivery_id = d.id ORDER BY a.attempt) AS attempts"""
_ATTEMPT_FIELDS = ("attempt", "attempted_at", "status_code", "latency_ms", "error")


def _with_attempts(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [
        dict(r) | {"attempts": [dict(zip(_ATTEMPT_FIELDS, a, strict=True)) for a in r["attempts"]]}
        for r in rows
    ]
