"""Placing, releasing and consuming holds: the rules, with Redis behind `HoldRepository`."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
from calendence.errors import (
    DomainError,
    HoldConflict,
    InternalError,
    InvalidInput,
    NotFound,
    Unavailable,
    is_store_busy,
)
from calendence.ids import existing_id
from calendence.logs import log_fields

from hold_service.catalogue_cache import CatalogueCache
from hold_service.hold_repository import (
    Confirmation,
    Consumption,
    HoldLocator,
    HoldRepository,
    Interval,
    Placement,
    ms,
)
from hold_service.slots import (
    MAX_AVAILABILITY_DAYS,
    SlotPlan,
    blocked_end,
    bookable_plans,
    check_slot,
    fits_hours,
    granules,
    resolve_offer,
)


@dataclass(frozen=True)
class HoldRecord:
    hold_id: str
    business_id: str
    holder_id: str
    service_id: str
    location_id: str
    staff_id: str
    resource_id: str
    starts_at: datetime
    ends_at: datetime
    expires_at: datetime
    blocked_until: datetime

    def to_json(self) -> bytes:
        return orjson.dumps(self.__dict__)

    @classmethod
    def from_json(cls, raw: bytes) -> HoldRecord:
        data = orjson.loads(raw)
        for name in ("starts_at", "ends_at", "expires_at", "blocked_until"):
            data[name] = datetime.fromisoformat(data[name])
        return cls(**data)


@dataclass(frozen=True)
class HoldWanted:
    """A request for a hold, its ids and time parsed."""

    business_id: UUID
    holder_id: str
    service_id: UUID
    location_id: UUID
    staff_id: UUID | None
    starts_at: datetime


@dataclass(frozen=True)
class ConsumeWanted:
    """A booking's request for its hold (ConsumeHold), its ids parsed."""

    business_id: UUID
    hold_id: str
    booking_id: str
    # Empty when the business itself books; otherwise only the holder may.
    holder_id: str
    pending: timedelta


@dataclass(frozen=True)
class ClaimToConfirm:
    """A committed booking's claim to make last (ConfirmClaim)."""

    booking_id: str
    hold_id: str
    resource: str
    starts_at: datetime
    blocked_until: datetime
    force: bool
    # A reschedule's confirmation: the interval (start, blocked end) the booking was
    # moved from, freed once the new one is confirmed.
    moved_from: tuple[datetime, datetime] | None = None


@dataclass(frozen=True)
class AvailableSlot:
    starts_at: datetime
    ends_at: datetime
    staff_ids: list[UUID]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Decided = TypeVar("Decided")
log = logging.getLogger("hold_service.holds")


def _taken() -> HoldConflict:
    return HoldConflict("the slot is already held or booked")


def _moment(unix_ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=unix_ms)


def _granules_of(kept: HoldLocator | Interval) -> range:
    """The granules of an interval kept in Unix ms (a hold's locator, a move record)."""
    return granules(_moment(kept.starts_ms), _moment(kept.blocked_ms))


def _confirmation(claim: ClaimToConfirm, moved_from: Interval | None) -> Confirmation:
    """What the repository confirms for `claim`; with `moved_from`, the granules of that
    interval outside the claim's are freed and the move's record deleted (unless a later
    move of the booking wrote its own)."""
    held = granules(claim.starts_at, claim.blocked_until)
    released = () if moved_from is None else [g for g in _granules_of(moved_from) if g not in held]
    return Confirmation(
        resource=claim.resource,
        hold_id=claim.hold_id,
        granules=held,
        booking_id=claim.booking_id,
        blocked_ms=ms(claim.blocked_until),
        force=claim.force,
        released=released,
        moved_from=moved_from,
    )


def _utc_day(moment: datetime) -> str:
    # Load counters are per UTC day: fair enough for spreading work, and timezone-free.
    return moment.astimezone(UTC).date().isoformat()


def _only(outcomes: Sequence[Decided | DomainError]) -> Decided:
    """The outcome of a batch of one, raised when it is an error."""
    [outcome] = outcomes
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


def _all_decided(outcomes: list[Decided | DomainError | None]) -> list[Decided | DomainError]:
    """Every item's outcome: one left undecided is a bug here, never a taken slot."""
    decided = [outcome for outcome in outcomes if outcome is not None]
    if len(decided) != len(outcomes):
        raise RuntimeError("an item of a batch was left undecided")
    return decided


def _store_failure(what: str, error: Exception, detail: str) -> DomainError:
    """What one item of a batch answers when Redis refused it: UNAVAILABLE for a busy
    store (one node of a cluster failing over, say: it may be asked again), else
    INTERNAL with `detail`."""
    if is_store_busy(error):
        log.warning(f"{what} found its store busy", extra=log_fields(error=repr(error)))
        return Unavailable("the hold's store is busy; try again shortly")
    log.error(f"{what} failed", extra=log_fields(error=repr(error)))
    return InternalError(detail)


def _each(
    outcomes: list[Decided | DomainError] | BaseException, count: int, what: str, detail: str
) -> list[Decided | DomainError]:
    """A part's outcomes, or the failure of the whole part as each item's own."""
    if not isinstance(outcomes, BaseException):
        return outcomes
    if isinstance(outcomes, DomainError):
        return [outcomes] * count
    if not isinstance(outcomes, Exception):
        raise outcomes  # cancelled: the call is gone
    return [_store_failure(what, outcomes, detail)] * count


class Holds:
    def __init__(
        self,
        repository: HoldRepository,
        catalogue: CatalogueCache,
        ttl: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.repository = repository
        self.catalogue = catalogue
        self.ttl = ttl
        self.clock = clock

    async def place_hold(self, wanted: HoldWanted) -> HoldRecord:
        return _only(await self.place_holds([wanted]))

    async def place_holds(self, batch: Sequence[HoldWanted]) -> list[HoldRecord | DomainError]:
        """Each hold decided on its own, in order (of two on one slot the first wins),
        with one Redis round trip for all those that claim one known resource.

        A store that cannot answer raises (every hold of the batch fails alike); any
        other failure is that hold's alone.
        """
        now = self.clock()
        outcomes: list[HoldRecord | DomainError | None] = [None] * len(batch)
        single: list[tuple[int, HoldRecord, Placement]] = []
        several: list[tuple[int, HoldWanted, SlotPlan]] = []
        for index, wanted in enumerate(batch):
            try:
                plan = check_slot(
                    await self.catalogue.get(wanted.business_id),
                    service_id=wanted.service_id,
                    location_id=wanted.location_id,
                    staff_id=wanted.staff_id,
                    starts_at=wanted.starts_at,
                    now=now,
                )
            except DomainError as error:
                outcomes[index] = error
                continue
            if not plan.candidates:
                outcomes[index] = _taken()
            elif len(plan.candidates) == 1:
                single.append((index, *self._placement(wanted, plan, plan.candidates[0], now)))
            else:
                several.append((index, wanted, plan))
        placed = await self.repository.place_many([placement for _, _, placement in single])
        existing: list[tuple[int, str, str]] = []
        for (index, hold, placement), result in zip(single, placed, strict=True):
            if isinstance(result, Exception):
                outcomes[index] = _store_failure(
                    "placing a hold", result, "the hold could not be placed"
                )
            elif result[0] == "placed":
                outcomes[index] = hold
            elif result[0] == "existing":
                existing.append((index, placement.resource, result[1]))
            else:
                outcomes[index] = _taken()
        # Rare: a retry of a hold already placed (its record), a staffed service without
        # a staff member named (a survey first). Each its own round trips, side by side.
        if existing or several:
            found = await asyncio.gather(
                *(self.repository.record(resource, hold_id) for _, resource, hold_id in existing),
                *(self._place_on_one_of(wanted, plan, now) for _, wanted, plan in several),
            )
            for (index, _, _), doc in zip(existing, found, strict=False):
                outcomes[index] = HoldRecord.from_json(doc) if isinstance(doc, bytes) else _taken()
            for (index, _, _), placed_one in zip(several, found[len(existing) :], strict=True):
                outcomes[index] = placed_one if isinstance(placed_one, HoldRecord) else _taken()
        return _all_decided(outcomes)

    def _placement(
        self, wanted: HoldWanted, plan: SlotPlan, candidate: tuple[str, UUID | None], now: datetime
    ) -> tuple[HoldRecord, Placement]:
        resource, staff = candidate
        # Each id written out once (a UUID's text is made anew on every str()).
        business_id, service_id = str(wanted.business_id), str(wanted.service_id)
        starts_ms = ms(plan.starts_at)
        hold = HoldRecord(
            hold_id=str(uuid.uuid4()),
            business_id=business_id,
            holder_id=wanted.holder_id,
            service_id=service_id,
            location_id=str(wanted.location_id),
            staff_id=str(staff or ""),
            resource_id=resource,
            starts_at=plan.starts_at,
            ends_at=plan.ends_at,
            expires_at=now + self.ttl,
            blocked_until=plan.blocked_until,
        )
        return hold, Placement(
            hold_id=hold.hold_id,
            holder_id=hold.holder_id,
            doc=hold.to_json(),
            resource=resource,
            granules=granules(plan.starts_at, plan.blocked_until),
            # The same holder asking again for the same slot gets its hold back.
            fingerprint=f"{wanted.holder_id}/{service_id}/{starts_ms}",
            ttl_ms=int(self.ttl.total_seconds() * 1000),
            locator=HoldLocator(business_id, resource, starts_ms, ms(plan.blocked_until)),
        )

    async def _place_on_one_of(
        self, wanted: HoldWanted, plan: SlotPlan, now: datetime
    ) -> HoldRecord | None:
        """Try the plan's candidates (staff members) in turn; None when none is free."""
        fingerprint = f"{wanted.holder_id}/{wanted.service_id}/{ms(plan.starts_at)}"
        candidates = await self._assignment_order(
            plan.candidates,
            granules(plan.starts_at, plan.blocked_until),
            fingerprint,
            wanted.starts_at,
        )
        for candidate in candidates:
            hold, placement = self._placement(wanted, plan, candidate, now)
            [result] = await self.repository.place_many([placement])
            if isinstance(result, Exception):
                raise result
            outcome, hold_id = result
            if outcome == "placed":
                return hold
            if outcome == "existing":
                existing = await self.repository.record(placement.resource, hold_id)
                if existing is not None:
                    return HoldRecord.from_json(existing)
        return None

    async def _assignment_order(
        self,
        candidates: list[tuple[str, UUID | None]],
        needed: range,
        fingerprint: str,
        starts_at: datetime,
    ) -> list[tuple[str, UUID | None]]:
        """Which staff to try, in order: one already holding this slot for this holder,
        else the free ones, least booked that day first (holds alone do not count).

        One Redis round trip; a member seen busy is not tried, one seen free may still
        be taken meanwhile, and the atomic place then moves on to the next.
        """
        survey = await self.repository.survey(
            [r for r, _ in candidates], needed, _utc_day(starts_at)
        )
        ranked: list[tuple[int, int, tuple[str, UUID | None]]] = []
        for index, (candidate, (load, values)) in enumerate(zip(candidates, survey, strict=True)):
            held = [v for v in values if v is not None]
            if not held:
                ranked.append((load, index, candidate))
            elif held[0].partition("|")[2] == fingerprint:
                return [candidate]
        return [candidate for *_, candidate in sorted(ranked)]

    async def _locate(self, business_id: UUID, hold_id: str) -> HoldLocator:
        existing_id(hold_id, "no such hold")
        locator = await self.repository.locate(hold_id)
        if locator is None or locator.business_id != str(business_id):
            raise NotFound("the hold has expired or does not exist")
        return locator

    async def release_hold(self, *, business_id: UUID, hold_id: str, holder_id: str) -> None:
        """Free a hold early; `holder_id` empty means the business itself asks."""
        locator = await self._locate(business_id, hold_id)
        outcome = await self.repository.release(locator, hold_id, _granules_of(locator), holder_id)
        # Another session's hold answers as if it did not exist, as on booking.
        if outcome <= 0:
            raise NotFound("the hold has expired, was used, or does not exist")

    async def consume_hold(self, wanted: ConsumeWanted) -> HoldRecord:
        return _only(await self.consume_holds([wanted]))

    async def consume_holds(self, batch: Sequence[ConsumeWanted]) -> list[HoldRecord | DomainError]:
        """Make each hold its booking's pending claim, which lapses after `pending`
        unless confirmed. A session books only its own holds (another's answers as if
        it did not exist, as on release). Each decided on its own, in order, with two
        Redis round trips for the whole batch; a store that cannot answer raises."""
        outcomes: list[HoldRecord | DomainError | None] = [None] * len(batch)
        asked: list[int] = []
        for index, wanted in enumerate(batch):
            try:
                if wanted.pending <= timedelta(0):
                    raise InvalidInput("bad claim", fields={"pending_ms": "must be positive"})
                existing_id(wanted.hold_id, "no such hold")
            except DomainError as error:
                outcomes[index] = error
                continue
            asked.append(index)
        locators = await self.repository.locate_many([batch[i].hold_id for i in asked])
        consuming: list[tuple[int, Consumption]] = []
        for index, locator in zip(asked, locators, strict=True):
            wanted = batch[index]
            if locator is None or locator.business_id != str(wanted.business_id):
                outcomes[index] = NotFound("the hold has expired or does not exist")
                continue
            consuming.append(
                (
                    index,
                    Consumption(
                        locator=locator,
                        hold_id=wanted.hold_id,
                        granules=_granules_of(locator),
                        booking_id=wanted.booking_id,
                        holder_id=wanted.holder_id,
                        day=_utc_day(_moment(locator.starts_ms)),
                        pending_ms=int(wanted.pending.total_seconds() * 1000),
                    ),
                )
            )
        results = await self.repository.consume_many(
            [consumption for _, consumption in consuming], ms(self.clock())
        )
        for (index, _), result in zip(consuming, results, strict=True):
            if isinstance(result, Exception):
                outcomes[index] = _store_failure(
                    "consuming a hold", result, "the hold could not be consumed"
                )
            elif result[0] == "conflict":
                outcomes[index] = HoldConflict("the slot was booked meanwhile")
            elif result[1] is None:
                outcomes[index] = NotFound("the hold has expired, was used, or does not exist")
            else:
                outcomes[index] = HoldRecord.from_json(result[1])
        return _all_decided(outcomes)

    async def consume_and_confirm(
        self, consume: Sequence[ConsumeWanted], confirm: Sequence[ClaimToConfirm]
    ) -> tuple[list[HoldRecord | DomainError], list[bool | DomainError]]:
        """`consume_holds` and `confirm_claims` side by side. A store that cannot answer
        one part fails only that part's items: the other part's were done."""
        consumed, confirmed = await asyncio.gather(
            self.consume_holds(consume), self.confirm_claims(confirm), return_exceptions=True
        )
        return (
            _each(consumed, len(consume), "consuming holds", "the hold could not be consumed"),
            _each(confirmed, len(confirm), "confirming claims", "the claim could not be confirmed"),
        )

    async def confirm_claim(self, claim: ClaimToConfirm) -> bool:
        return _only(await self.confirm_claims([claim]))

    async def confirm_claims(self, batch: Sequence[ClaimToConfirm]) -> list[bool | DomainError]:
        """Make each committed booking's claim last until it ends; for each, whether
        every granule is the booking's now. Two Redis round trips for the whole batch,
        three when it has repairs: a repair also finishes the booking's reschedule that
        committed but was never confirmed (its move record says what to free)."""
        repairs = [c for c in batch if c.force and c.moved_from is None]
        under_way = dict(
            zip(
                [id(c) for c in repairs],
                await self.repository.moves_under_way(
                    [(c.resource, c.booking_id) for c in repairs]
                ),
                strict=True,
            )
        )
        results = await self.repository.confirm_many(
            [
                _confirmation(
                    claim,
                    under_way.get(id(claim))
                    if claim.moved_from is None
                    else Interval(ms(claim.moved_from[0]), ms(claim.moved_from[1])),
                )
                for claim in batch
            ]
        )
        return [
            _store_failure("confirming a claim", result, "the claim could not be confirmed")
            if isinstance(result, Exception)
            else result
            for result in results
        ]

    async def pending_claims(self, due_before: datetime, limit: int) -> list[tuple[str, datetime]]:
        claims = await self.repository.pending_claims(
            ms(due_before), max(1, min(limit or 100, 1000))
        )
        return [(booking_id, _moment(deadline)) for booking_id, deadline in claims]

    async def forget_claim(self, booking_id: str, deadline: datetime) -> None:
        # Exact arithmetic: the deadline must match the tracked one to the millisecond.
        await self.repository.forget_claim(
            booking_id, (deadline - _EPOCH) // timedelta(milliseconds=1)
        )

    async def restore_hold(self, *, business_id: UUID, hold_id: str, booking_id: str) -> HoldRecord:
        locator = await self._locate(business_id, hold_id)
        record = await self.repository.record(locator.resource, hold_id)
        if record is None:
            raise NotFound("the hold has expired")
        hold = HoldRecord.from_json(record)
        day = _utc_day(hold.starts_at)
        if not await self.repository.restore(
            locator, hold_id, _granules_of(locator), booking_id, day, ms(hold.expires_at)
        ):
            raise NotFound("the hold is not used by this booking")
        return hold

    async def free_interval(
        self, *, booking_id: str, resource: str, starts_at: datetime, blocked_until: datetime
    ) -> None:
        """Free a released booking's interval, and what a reschedule of it that was never
        confirmed still claims of the interval it moved from."""
        freed, day = granules(starts_at, blocked_until), _utc_day(starts_at)
        _, moved_from = await self.repository.free_booking(resource, freed, booking_id, day)
        if moved_from is not None:
            leftovers = [g for g in _granules_of(moved_from) if g not in freed]
            await self.repository.free_booking(resource, leftovers, booking_id, day, leftovers=True)

    async def move_interval(
        self,
        *,
        business_id: UUID,
        booking_id: str,
        resource: str,
        service_id: UUID,
        location_id: UUID,
        staff_id: UUID | None,
        old: tuple[datetime, datetime],
        starts_at: datetime,
        ends_at: datetime,
        pending: timedelta,
    ) -> datetime:
        """Re-check a rescheduled booking against the catalogue and claim its new
        interval for `pending`, until its confirmation after the move committed (the
        old interval stays the booking's until then); returns the new blocked end."""
        if ends_at <= starts_at:
            raise InvalidInput(
                "the booking cannot be moved", fields={"ends_at": "must be after starts_at"}
            )
        plan = check_slot(
            await self.catalogue.get(business_id),
            service_id=service_id,
            location_id=location_id,
            staff_id=staff_id,
            starts_at=starts_at,
            now=self.clock(),
            # The business moves its own booking: notice and advance are for clients.
            apply_policy=False,
        )
        tz = ZoneInfo(plan.location.timezone)
        if ends_at != plan.ends_at and not fits_hours(plan.location.hours, tz, starts_at, ends_at):
            raise InvalidInput(
                "the booking cannot be moved",
                fields={"ends_at": "outside the location's opening hours"},
            )
        blocked_until = blocked_end(ends_at, plan.service.buffer_minutes)
        new = granules(starts_at, blocked_until)
        current = granules(*old)
        # Under the booking's row lock, `old` is where PostgreSQL has it: an earlier move
        # recorded from elsewhere committed and is not confirmed (its process died, or
        # its confirmation is still on the way), so what it left there is freed now.
        moved_from = Interval(ms(old[0]), ms(old[1]))
        [earlier] = await self.repository.moves_under_way([(resource, booking_id)])
        stale: list[int] = []
        if earlier is not None and earlier != moved_from:
            stale = [g for g in _granules_of(earlier) if g not in current and g not in new]
        moved = await self.repository.move_booking(
            resource,
            booking_id,
            new=new,
            stale=stale,
            moved_from=moved_from,
            pending_ms=int(pending.total_seconds() * 1000),
            now_ms=ms(self.clock()),
        )
        if not moved:
            raise HoldConflict("the new time is already held or booked")
        return blocked_until

    async def availability(
        self,
        *,
        business_id: UUID,
        service_id: UUID,
        location_id: UUID,
        staff_id: UUID | None,
        start: datetime,
        end: datetime,
    ) -> tuple[str, list[AvailableSlot]]:
        """Bookable starts in [start, end): those a hold would accept right now."""
        if end <= start:
            raise InvalidInput("bad range", fields={"to": "must be after from"})
        if end - start > timedelta(days=MAX_AVAILABILITY_DAYS):
            raise InvalidInput(
                "bad range", fields={"to": f"at most {MAX_AVAILABILITY_DAYS} days after from"}
            )
        offer = resolve_offer(
            await self.catalogue.get(business_id),
            service_id=service_id,
            location_id=location_id,
            staff_id=staff_id,
        )
        plans = bookable_plans(offer, start, end, self.clock())
        by_resource: dict[str, set[int]] = {}
        for plan in plans:
            for resource, _ in plan.candidates:
                by_resource.setdefault(resource, set()).update(
                    granules(plan.starts_at, plan.blocked_until)
                )
        claimed = await self.repository.claimed(by_resource)
        slots = []
        for plan in plans:
            needed = granules(plan.starts_at, plan.blocked_until)
            free_staff = [
                staff
                for resource, staff in plan.candidates
                if not any((resource, g) in claimed for g in needed)
            ]
            if free_staff:
                slots.append(
                    AvailableSlot(
                        plan.starts_at, plan.ends_at, [s for s in free_staff if s is not None]
                    )
                )
        return offer.location.timezone, slots
