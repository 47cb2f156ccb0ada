"""SQL for client messages: claim due ones, record attempts (they are queued with
their event's receipt: `DeliveryRepository.record_events`).

A claim leases the message (its `next_attempt_at` moves one lease ahead, FOR UPDATE
SKIP LOCKED so replicas never take the same one); a replica that dies mid-send only
delays it until the lease runs out. Results come back with the lease's token, and one
whose lease was taken over meanwhile is recorded but no longer steers the message.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from calendence.schemas.messaging import ClientEmail
from calendence.storage import Repository


@dataclass(frozen=True)
class NewMessage:
    event_id: UUID
    business_id: UUID
    booking_id: UUID
    kind: ClientEmail
    recipient: str
    subject: str


@dataclass(frozen=True)
class MessageClaim:
    message_id: UUID
    attempt: int
    lease_token: UUID
    kind: ClientEmail
    event: dict[str, Any]


class MessageRepository(Repository):
    async def claim(
        self, want: int, lease: timedelta, queued_before: timedelta | None = None
    ) -> list[MessageClaim]:
        """Lease up to `want` due messages; with `queued_before`, only those queued at
        least that long ago."""
        token = uuid.uuid4()
        rows = await self.db.fetch(
            """
            WITH due AS (
                SELECT id FROM client_messages
                WHERE status = 'pending' AND next_attempt_at <= now()
                  AND ($4::interval IS NULL OR created_at <= now() - $4::interval)
                ORDER BY next_attempt_at
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE client_messages m
            SET attempt_count = m.attempt_count + 1, next_attempt_at = now() + $2,
                lease_token = $3
            FROM due, event_receipts r
            WHERE m.id = due.id AND r.event_id = m.event_id
            RETURNING m.id, m.attempt_count, m.kind, r.payload
            """,
            want,
            lease,
            token,
            queued_before,
        )
        return [
            MessageClaim(row["id"], row["attempt_count"], token, row["kind"], row["payload"])
            for row in rows
        ]

    async def finish(
        self,
        claim: MessageClaim,
        attempted_at: datetime,
        error: str | None,
        retry_in: timedelta | None,
    ) -> None:
        """Record the attempt; then `sent` (no error), due again after `retry_in`, or
        `failed` (an error and no retry left, or one no retry can cure)."""
        # One statement (one transaction, one round trip): the attempt and its outcome.
        await self.db.execute(
            """
            WITH attempt AS (
                INSERT INTO client_message_attempts (message_id, attempt, attempted_at, error)
                VALUES ($1, $6, $5, $3) ON CONFLICT DO NOTHING
            )
            UPDATE client_messages
            SET status = CASE WHEN $3::text IS NULL THEN 'sent'
                              WHEN $4::interval IS NULL THEN 'failed'
                              ELSE 'pending' END,
                sent_at = CASE WHEN $3::text IS NULL THEN $5::timestamptz END,
                next_attempt_at = CASE WHEN $4::interval IS NULL THEN next_attempt_at
                                       ELSE now() + $4::interval END,
                lease_token = NULL
            WHERE id = $1 AND lease_token = $2 AND status = 'pending'
            """,
            claim.message_id,
            claim.lease_token,
            error,
            retry_in,
            attempted_at,
            claim.attempt,
        )

    async def release(self, claim: MessageClaim) -> None:
        """Give an unfinished claim back, due at once (a clean shutdown)."""
        await self.db.execute(
            "UPDATE client_messages SET next_attempt_at = now(), lease_token = NULL, "
            "attempt_count = attempt_count - 1 WHERE id = $1 AND lease_token = $2",
            claim.message_id,
            claim.lease_token,
        )

    async def for_booking(self, business_id: UUID, booking_id: UUID) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            """
            SELECT m.id, m.booking_id, m.event_id, m.kind, m.channel, m.recipient, m.subject,
                   m.status, m.created_at, m.sent_at,
                   coalesce(jsonb_agg(jsonb_build_object(
                       'attempt', a.attempt, 'attempted_at', a.attempted_at, 'error', a.error)
                       ORDER BY a.attempt) FILTER (WHERE a.attempt IS NOT NULL),
                       '[]') AS attempts
            FROM client_messages m
            LEFT JOIN client_message_attempts a ON a.message_id = m.id
            WHERE m.business_id = $1 AND m.booking_id = $2
            GROUP BY m.id
            ORDER BY m.seq
            """,
            business_id,
            booking_id,
        )
        return [dict(row) for row in rows]
