"""hold-service as booking-service sees it: the gRPC calls behind a small interface.

Consuming holds and confirming claims are what every booking does: those asked for
while earlier ones are under way go together as one `ConsumeAndConfirm` call
(`calendence.coalesce`), which hold-service runs as a Redis pipeline or two; a quiet
booking-service sends each consume alone, at once. A committed booking's confirmation
is in no hurry (its pending claim holds the slot meanwhile): it waits a little for the
next booking's consume to go with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias
from uuid import UUID

import grpc
from calendence import rpc
from calendence.coalesce import Coalescer
from calendence.errors import DomainError, InternalError, NotFound
from calendence.hold.outcomes import failure_of, outcome_of
from calendence.hold.v1 import hold_pb2, hold_pb2_grpc
from calendence.timefmt import from_timestamp, to_timestamp

# How long freeing a released slot may take: a repair round waits for a hold-service
# that is restarting; a release whose answer waits on it gives up well inside the
# gateway's own deadline (5 s) and leaves the slot to the repair.
_FREE_WAITING_SECONDS = 5.0
_FREE_ANSWERING_SECONDS = 2.0

# What goes in a ConsumeAndConfirm call: a hold to consume or a claim to confirm.
ClaimStep: TypeAlias = hold_pb2.ConsumeHoldRequest | hold_pb2.ConfirmClaimRequest


@dataclass(frozen=True)
class Claim:
    """The interval a booking claims in Redis, and the hold it came from."""

    hold_id: UUID
    resource_id: str
    starts_at: datetime
    blocked_until: datetime


@dataclass(frozen=True)
class PendingClaim:
    booking_id: UUID
    deadline: datetime


@dataclass(frozen=True)
class ConsumedHold:
    hold_id: UUID
    service_id: UUID
    location_id: UUID
    staff_id: UUID | None
    resource_id: str
    starts_at: datetime
    ends_at: datetime
    blocked_until: datetime

    @property
    def claim(self) -> Claim:
        return Claim(self.hold_id, self.resource_id, self.starts_at, self.blocked_until)


def _confirmed(outcome: hold_pb2.ConfirmClaimOutcome) -> bool | DomainError:
    if outcome.HasField("answer"):
        return outcome.answer.confirmed
    return failure_of(outcome.failure, "confirming the claim")


class HoldClient:
    """hold-service's calls. Each waits for a hold-service that just restarted (up to its
    deadline) instead of failing at once with UNAVAILABLE while the channel reconnects."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = hold_pb2_grpc.HoldServiceStub(channel)
        self._claims: Coalescer[ClaimStep, hold_pb2.PlacedHold | bool] = Coalescer(
            self._send_claims, on_abandoned=self._restore_abandoned
        )

    async def consume(
        self,
        business_id: UUID,
        hold_id: UUID,
        booking_id: UUID,
        *,
        holder_id: str,
        pending: timedelta,
    ) -> ConsumedHold:
        hold = await self._claims.submit(
            hold_pb2.ConsumeHoldRequest(
                business_id=str(business_id),
                hold_id=str(hold_id),
                booking_id=str(booking_id),
                holder_id=holder_id,
                pending_ms=int(pending.total_seconds() * 1000),
            )
        )
        assert isinstance(hold, hold_pb2.PlacedHold)
        return ConsumedHold(
            hold_id=UUID(hold.hold_id),
            service_id=UUID(hold.service_id),
            location_id=UUID(hold.location_id),
            staff_id=UUID(hold.staff_id) if hold.staff_id else None,
            resource_id=hold.resource_id,
            starts_at=from_timestamp(hold.starts_at),
            ends_at=from_timestamp(hold.ends_at),
            blocked_until=from_timestamp(hold.blocked_until),
        )

    async def _send_claims(
        self, batch: list[ClaimStep]
    ) -> Sequence[hold_pb2.PlacedHold | bool | DomainError]:
        consume = [s for s in batch if isinstance(s, hold_pb2.ConsumeHoldRequest)]
        confirm = [s for s in batch if isinstance(s, hold_pb2.ConfirmClaimRequest)]
        answer = await rpc.unary(
            self.stub.ConsumeAndConfirm,
            hold_pb2.ConsumeAndConfirmRequest(consume=consume, confirm=confirm),
            wait_for_ready=True,
        )
        if len(answer.consumed) != len(consume) or len(answer.confirmed) != len(confirm):
            raise InternalError("hold-service answered another number of claims")
        consumed = iter(answer.consumed)
        confirmed = iter(answer.confirmed)
        return [
            outcome_of(next(consumed))
            if isinstance(step, hold_pb2.ConsumeHoldRequest)
            else _confirmed(next(confirmed))
            for step in batch
        ]

    async def _restore_abandoned(
        self, wanted: ClaimStep, outcome: hold_pb2.PlacedHold | bool
    ) -> None:
        """A hold consumed for a booking whose request was gone by then: nobody will
        write that booking, so the hold goes back to its holder at once. (A claim
        confirmed for one is the booking's, committed: nothing to undo.)"""
        if not isinstance(wanted, hold_pb2.ConsumeHoldRequest):
            return
        with contextlib.suppress(NotFound):  # expired meanwhile
            await self.restore(
                UUID(wanted.business_id), UUID(wanted.hold_id), UUID(wanted.booking_id)
            )

    async def confirm(
        self,
        booking_id: UUID,
        claim: Claim,
        *,
        force: bool,
        moved_from: tuple[datetime, datetime] | None = None,
        wait_up_to: float = 0.0,
    ) -> bool:
        """Make a committed booking's pending claim last until it ends, and free the
        interval (start, blocked end) a reschedule `moved_from`; it may wait
        `wait_up_to` seconds to go with the next consume or confirm."""
        request = hold_pb2.ConfirmClaimRequest(
            booking_id=str(booking_id),
            hold_id=str(claim.hold_id),
            resource_id=claim.resource_id,
            starts_at=to_timestamp(claim.starts_at),
            blocked_until=to_timestamp(claim.blocked_until),
            force=force,
        )
        if moved_from is not None:
            request.moved_from_starts_at.CopyFrom(to_timestamp(moved_from[0]))
            request.moved_from_blocked_until.CopyFrom(to_timestamp(moved_from[1]))
        confirmed = await self._claims.submit(request, wait_up_to=wait_up_to)
        return bool(confirmed)

    async def drain(self) -> None:
        """Wait for the consumes and confirms under way (at shutdown)."""
        await self._claims.drain()

    async def pending_claims(self, due_before: datetime, limit: int) -> list[PendingClaim]:
        answer = await rpc.unary(
            self.stub.ListPendingClaims,
            hold_pb2.ListPendingClaimsRequest(due_before=to_timestamp(due_before), limit=limit),
            wait_for_ready=True,
        )
        return [
            PendingClaim(UUID(claim.booking_id), from_timestamp(claim.deadline))
            for claim in answer.claims
        ]

    async def forget(self, claim: PendingClaim) -> None:
        await rpc.unary(
            self.stub.ForgetClaim,
            hold_pb2.ForgetClaimRequest(
                booking_id=str(claim.booking_id), deadline=to_timestamp(claim.deadline)
            ),
            wait_for_ready=True,
        )

    async def restore(self, business_id: UUID, hold_id: UUID, booking_id: UUID) -> None:
        await rpc.unary(
            self.stub.RestoreHold,
            hold_pb2.RestoreHoldRequest(
                business_id=str(business_id), hold_id=str(hold_id), booking_id=str(booking_id)
            ),
            wait_for_ready=True,
        )

    async def free(
        self,
        booking_id: UUID,
        resource_id: str,
        starts_at: datetime,
        blocked_until: datetime,
        *,
        wait_for_hold_service: bool = True,
    ) -> None:
        """Free a released booking's interval. Without `wait_for_hold_service` the call
        fails at once while hold-service is unreachable, and within
        `_FREE_ANSWERING_SECONDS` at most otherwise: for a caller whose own caller is
        waiting and that frees again later."""
        await rpc.unary(
            self.stub.FreeInterval,
            hold_pb2.FreeIntervalRequest(
                booking_id=str(booking_id),
                resource_id=resource_id,
                starts_at=to_timestamp(starts_at),
                blocked_until=to_timestamp(blocked_until),
            ),
            wait_for_ready=wait_for_hold_service,
            timeout=(_FREE_WAITING_SECONDS if wait_for_hold_service else _FREE_ANSWERING_SECONDS),
        )

    async def move(
        self,
        *,
        business_id: UUID,
        booking_id: UUID,
        resource_id: str,
        service_id: UUID,
        location_id: UUID,
        staff_id: UUID | None,
        previous: tuple[datetime, datetime],
        starts_at: datetime,
        ends_at: datetime,
        pending: timedelta,
    ) -> datetime:
        """Claim a reschedule's new interval for `pending` (`confirm` with `moved_from`
        after the commit makes it last and frees `previous`); returns the new blocked
        end."""
        answer = await rpc.unary(
            self.stub.ReserveInterval,
            hold_pb2.ReserveIntervalRequest(
                business_id=str(business_id),
                booking_id=str(booking_id),
                resource_id=resource_id,
                service_id=str(service_id),
                location_id=str(location_id),
                staff_id=str(staff_id or ""),
                starts_at=to_timestamp(starts_at),
                ends_at=to_timestamp(ends_at),
                previous_starts_at=to_timestamp(previous[0]),
                previous_blocked_until=to_timestamp(previous[1]),
                pending_ms=int(pending.total_seconds() * 1000),
            ),
            wait_for_ready=True,
        )
        return from_timestamp(answer.blocked_until)
