"""SQL for client messages: record attempts and claim due ones, in one statement (they
are queued with their event's receipt: `DeliveryRepository.record_events`, which also
stores the ones the queuing replica sends at once already leased to it, as a claim
would).

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


@dataclass(frozen=True)
class MessageAttempt:
    """An attempt that ended, to be recorded: `error` None means sent; with an error,
    due again after `retry_in`, or failed for good when that is None."""

    claim: MessageClaim
    attempted_at: datetime
    error: str | None
    retry_in: timedelta | None


class MessageRepository(Repository):
    async def finish_and_claim(
        self,
        ended: list[MessageAttempt],
        want: int,
        lease: timedelta,
        queued_before: timedelta | None = None,
    ) -> list[MessageClaim]:
        """Record the attempts that ended, then lease up to `want` due messages (with
        `queued_before`, only those queued at least that long ago), in one statement:
        one transaction and one round trip for both.

        An attempt whose lease was taken over meanwhile is recorded but no longer
        steers its message. The messages just finished are never claimed by the same
        statement (one row is not updated twice in a statement)."""
        token = uuid.uuid4()
        rows = await self.db.fetch(
            """
            WITH ended AS (
                SELECT * FROM unnest(
                    $1::uuid[], $2::uuid[], $3::int[], $4::timestamptz[], $5::text[],
                    $6::interval[]
                ) AS t(message_id, lease_token, attempt, attempted_at, error, retry_in)
            ), attempts AS (
                INSERT INTO client_message_attempts (message_id, attempt, attempted_at, error)
                SELECT message_id, attempt, attempted_at, error FROM ended
                ON CONFLICT DO NOTHING
            ), outcomes AS (
                UPDATE client_messages m
                SET status = CASE WHEN e.error IS NULL THEN 'sent'
                                  WHEN e.retry_in IS NULL THEN 'failed'
                                  ELSE 'pending' END,
                    sent_at = CASE WHEN e.error IS NULL THEN e.attempted_at END,
                    next_attempt_at = CASE WHEN e.retry_in IS NULL THEN m.next_attempt_at
                                           ELSE now() + e.retry_in END,
                    lease_token = NULL
                FROM ended e
                WHERE m.id = e.message_id AND m.lease_token = e.lease_token
                  AND m.status = 'pending'
            ), due AS (
                SELECT id FROM client_messages
                WHERE status = 'pending' AND next_attempt_at <= now()
                  AND ($10::interval IS NULL OR created_at <= now() - $10::interval)
                  AND id <> ALL ($1::uuid[])
                ORDER BY next_attempt_at
                LIMIT $7
                FOR UPDATE SKIP LOCKED
            )
            UPDATE client_messages m
            SET attempt_count = m.attempt_count + 1, next_attempt_at = now() + $8,
                lease_token = $9
            FROM due, event_receipts r
            WHERE m.id = due.id AND r.event_id = m.event_id
            RETURNING m.id, m.attempt_count, m.kind, r.payload
            """,
            [a.claim.message_id for a in ended],
            [a.claim.lease_token for a in ended],
            [a.claim.attempt for a in ended],
            [a.attempted_at for a in ended],
            [a.error for a in ended],
            [a.retry_in for a in ended],
            want,
            lease,
            token,
            queued_before,
        )
        return [
            MessageClaim(row["id"], row["attempt_count"], token, row["kind"], row["payload"])
            for row in rows
        ]

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
