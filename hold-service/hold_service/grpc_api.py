"""gRPC servicer for holds: protobuf in, domain call, protobuf out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from calendence.errors import DomainError, error_kind
from calendence.hold.v1 import hold_pb2, hold_pb2_grpc
from calendence.ids import optional_uuid, parse_uuid
from calendence.rpc import ServicerContext
from calendence.settings import BookingServiceSettings
from calendence.timefmt import from_timestamp, set_timestamp, to_timestamp
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from hold_service.holds import ClaimToConfirm, ConsumeWanted, HoldRecord, Holds, HoldWanted

# How long a reschedule's new interval is claimed pending when the caller says nothing:
# booking-service's own default pending claim.
DEFAULT_MOVE_PENDING_MS = int(
    BookingServiceSettings.model_fields["pending_claim_seconds"].default * 1000
)

Message = TypeVar("Message")
Wanted = TypeVar("Wanted")
Outcome = TypeVar("Outcome")


def hold_message(hold: HoldRecord) -> hold_pb2.PlacedHold:
    message = hold_pb2.PlacedHold()
    fill_hold(message, hold)
    return message


def fill_hold(message: hold_pb2.PlacedHold, hold: HoldRecord) -> None:
    """Write `hold` into a message's field in place: a batch's answers are built where
    they go, without making each PlacedHold (and its times) apart and copying it in."""
    message.hold_id = hold.hold_id
    message.business_id = hold.business_id
    message.holder_id = hold.holder_id
    message.service_id = hold.service_id
    message.location_id = hold.location_id
    message.staff_id = hold.staff_id
    message.resource_id = hold.resource_id
    set_timestamp(message.starts_at, hold.starts_at)
    set_timestamp(message.ends_at, hold.ends_at)
    set_timestamp(message.expires_at, hold.expires_at)
    set_timestamp(message.blocked_until, hold.blocked_until)


def wanted_hold(request: hold_pb2.PlaceHoldRequest) -> HoldWanted:
    return HoldWanted(
        business_id=parse_uuid(request.business_id, "business_id"),
        holder_id=request.holder_id,
        service_id=parse_uuid(request.service_id, "service_id"),
        location_id=parse_uuid(request.location_id, "location_id"),
        staff_id=optional_uuid(request.staff_id, "staff_id"),
        starts_at=from_timestamp(request.starts_at),
    )


def failure_message(error: DomainError) -> hold_pb2.Failure:
    return hold_pb2.Failure(kind=error_kind(error), detail=error.detail, fields=error.fields)


def add_outcomes(
    into: RepeatedCompositeFieldContainer[hold_pb2.PlaceHoldOutcome],
    outcomes: Iterable[HoldRecord | DomainError],
) -> None:
    for outcome in outcomes:
        item = into.add()
        if isinstance(outcome, DomainError):
            item.failure.CopyFrom(failure_message(outcome))
        else:
            fill_hold(item.hold, outcome)


def consume_wanted(request: hold_pb2.ConsumeHoldRequest) -> ConsumeWanted:
    return ConsumeWanted(
        business_id=parse_uuid(request.business_id, "business_id"),
        hold_id=request.hold_id,
        booking_id=request.booking_id,
        holder_id=request.holder_id,
        pending=timedelta(milliseconds=request.pending_ms),
    )


def claim_to_confirm(request: hold_pb2.ConfirmClaimRequest) -> ClaimToConfirm:
    return ClaimToConfirm(
        booking_id=request.booking_id,
        hold_id=request.hold_id,
        resource=request.resource_id,
        starts_at=from_timestamp(request.starts_at),
        blocked_until=from_timestamp(request.blocked_until),
        force=request.force,
        moved_from=(
            (
                from_timestamp(request.moved_from_starts_at),
                from_timestamp(request.moved_from_blocked_until),
            )
            if request.HasField("moved_from_starts_at")
            else None
        ),
    )


def confirm_outcome_message(outcome: bool | DomainError) -> hold_pb2.ConfirmClaimOutcome:
    if isinstance(outcome, DomainError):
        return hold_pb2.ConfirmClaimOutcome(failure=failure_message(outcome))
    return hold_pb2.ConfirmClaimOutcome(answer=hold_pb2.ConfirmClaimResponse(confirmed=outcome))


@dataclass(frozen=True)
class ParsedBatch(Generic[Wanted]):
    """A batch call's items parsed, in order: an item that does not parse fails alone,
    the others (`wanted`) are decided together."""

    items: list[Wanted | DomainError]

    @property
    def wanted(self) -> list[Wanted]:
        return [item for item in self.items if not isinstance(item, DomainError)]

    def outcomes(self, decided: Sequence[Outcome | DomainError]) -> list[Outcome | DomainError]:
        """Every item's outcome, in order, given those of `wanted`."""
        of_wanted = iter(decided)
        return [i if isinstance(i, DomainError) else next(of_wanted) for i in self.items]


def parse_batch(
    items: Iterable[Message], parse: Callable[[Message], Wanted]
) -> ParsedBatch[Wanted]:
    parsed: list[Wanted | DomainError] = []
    for item in items:
        try:
            parsed.append(parse(item))
        except DomainError as error:
            parsed.append(error)
    return ParsedBatch(parsed)


class HoldServicer(hold_pb2_grpc.HoldServiceServicer):
    def __init__(self, holds: Holds) -> None:
        self.holds = holds

    async def PlaceHold(
        self, request: hold_pb2.PlaceHoldRequest, context: ServicerContext
    ) -> hold_pb2.PlacedHold:
        return hold_message(await self.holds.place_hold(wanted_hold(request)))

    async def PlaceHolds(
        self, request: hold_pb2.PlaceHoldsRequest, context: ServicerContext
    ) -> hold_pb2.PlaceHoldsResponse:
        batch = parse_batch(request.holds, wanted_hold)
        outcomes = batch.outcomes(await self.holds.place_holds(batch.wanted))
        response = hold_pb2.PlaceHoldsResponse()
        add_outcomes(response.outcomes, outcomes)
        return response

    async def ReleaseHold(
        self, request: hold_pb2.ReleaseHoldRequest, context: ServicerContext
    ) -> hold_pb2.ReleaseHoldResponse:
        await self.holds.release_hold(
            business_id=parse_uuid(request.business_id, "business_id"),
            hold_id=request.hold_id,
            holder_id=request.holder_id,
        )
        return hold_pb2.ReleaseHoldResponse()

    async def ConsumeHold(
        self, request: hold_pb2.ConsumeHoldRequest, context: ServicerContext
    ) -> hold_pb2.PlacedHold:
        return hold_message(await self.holds.consume_hold(consume_wanted(request)))

    async def ConfirmClaim(
        self, request: hold_pb2.ConfirmClaimRequest, context: ServicerContext
    ) -> hold_pb2.ConfirmClaimResponse:
        confirmed = await self.holds.confirm_claim(claim_to_confirm(request))
        return hold_pb2.ConfirmClaimResponse(confirmed=confirmed)

    async def ConsumeAndConfirm(
        self, request: hold_pb2.ConsumeAndConfirmRequest, context: ServicerContext
    ) -> hold_pb2.ConsumeAndConfirmResponse:
        batch = parse_batch(request.consume, consume_wanted)
        consumed, confirmed = await self.holds.consume_and_confirm(
            batch.wanted, [claim_to_confirm(c) for c in request.confirm]
        )
        response = hold_pb2.ConsumeAndConfirmResponse(
            confirmed=[confirm_outcome_message(o) for o in confirmed]
        )
        add_outcomes(response.consumed, batch.outcomes(consumed))
        return response

    async def ListPendingClaims(
        self, request: hold_pb2.ListPendingClaimsRequest, context: ServicerContext
    ) -> hold_pb2.ListPendingClaimsResponse:
        claims = await self.holds.pending_claims(from_timestamp(request.due_before), request.limit)
        return hold_pb2.ListPendingClaimsResponse(
            claims=[
                hold_pb2.PendingClaim(booking_id=booking_id, deadline=to_timestamp(deadline))
                for booking_id, deadline in claims
            ]
        )

    async def ForgetClaim(
        self, request: hold_pb2.ForgetClaimRequest, context: ServicerContext
    ) -> hold_pb2.ForgetClaimResponse:
        await self.holds.forget_claim(request.booking_id, from_timestamp(request.deadline))
        return hold_pb2.ForgetClaimResponse()

    async def RestoreHold(
        self, request: hold_pb2.RestoreHoldRequest, context: ServicerContext
    ) -> hold_pb2.PlacedHold:
        hold = await self.holds.restore_hold(
            business_id=parse_uuid(request.business_id, "business_id"),
            hold_id=request.hold_id,
            booking_id=request.booking_id,
        )
        return hold_message(hold)

    async def ReserveInterval(
        self, request: hold_pb2.ReserveIntervalRequest, context: ServicerContext
    ) -> hold_pb2.ReserveIntervalResponse:
        blocked_until = await self.holds.move_interval(
            business_id=parse_uuid(request.business_id, "business_id"),
            booking_id=request.booking_id,
            resource=request.resource_id,
            service_id=parse_uuid(request.service_id, "service_id"),
            location_id=parse_uuid(request.location_id, "location_id"),
            staff_id=optional_uuid(request.staff_id, "staff_id"),
            old=(
                from_timestamp(request.previous_starts_at),
                from_timestamp(request.previous_blocked_until),
            ),
            starts_at=from_timestamp(request.starts_at),
            ends_at=from_timestamp(request.ends_at),
            # An older booking-service asks for no pending time and never confirms: its
            # claim repair confirms the move (forced) before the default lapses.
            pending=timedelta(milliseconds=request.pending_ms or DEFAULT_MOVE_PENDING_MS),
        )
        return hold_pb2.ReserveIntervalResponse(
            resource_id=request.resource_id, blocked_until=to_timestamp(blocked_until)
        )

    async def FreeInterval(
        self, request: hold_pb2.FreeIntervalRequest, context: ServicerContext
    ) -> hold_pb2.FreeIntervalResponse:
        await self.holds.free_interval(
            booking_id=request.booking_id,
            resource=request.resource_id,
            starts_at=from_timestamp(request.starts_at),
            blocked_until=from_timestamp(request.blocked_until),
        )
        return hold_pb2.FreeIntervalResponse()

    async def GetAvailability(
        self, request: hold_pb2.AvailabilityRequest, context: ServicerContext
    ) -> hold_pb2.AvailabilityResponse:
        timezone, slots = await self.holds.availability(
            business_id=parse_uuid(request.business_id, "business_id"),
            service_id=parse_uuid(request.service_id, "service_id"),
            location_id=parse_uuid(request.location_id, "location_id"),
            staff_id=optional_uuid(request.staff_id, "staff_id"),
            start=from_timestamp(request.start),
            end=from_timestamp(request.end),
        )
        return hold_pb2.AvailabilityResponse(
            timezone=timezone,
            slots=[
                hold_pb2.AvailabilitySlot(
                    starts_at=to_timestamp(s.starts_at),
                    ends_at=to_timestamp(s.ends_at),
                    staff_ids=[str(i) for i in s.staff_ids],
                )
                for s in slots
            ],
        )
