"""Placing, releasing and consuming holds: the rules, with Redis behind `HoldRepository`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
from calendence.errors import HoldConflict, InvalidInput, NotFound
from calendence.ids import existing_id

from hold_service.catalogue_cache import CatalogueCache
from hold_service.hold_repository import HoldLocator, HoldRepository, ms
from hold_service.slots import (
    MAX_AVAILABILITY_DAYS,
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
class AvailableSlot:
    starts_at: datetime
    ends_at: datetime
    staff_ids: list[UUID]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc_day(moment: datetime) -> str:
    # Load counters are per UTC day: fair enough for spreading work, and timezone-free.
    return moment.astimezone(UTC).date().isoformat()


class Holds:
    def __init__(
        self,
        store: HoldRepository,
        catalogue: CatalogueCache,
        ttl: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.ttl = ttl
        self.clock = clock

    async def place_hold(
        self,
        *,
        business_id: UUID,
        holder_id: str,
        service_id: UUID,
        location_id: UUID,
        staff_id: UUID | None,
        starts_at: datetime,
    ) -> HoldRecord:
        now = self.clock()
        plan = check_slot(
            await self.catalogue.get(business_id),
            service_id=service_id,
            location_id=location_id,
            staff_id=staff_id,
            starts_at=starts_at,
            now=now,
        )
        needed = granules(plan.starts_at, plan.blocked_until)
        # The same holder asking again for the same slot gets its hold back.
        fingerprint = f"{holder_id}/{service_id}/{ms(plan.starts_at)}"
        candidates = plan.candidates
        if len(candidates) > 1:
            candidates = await self._assignment_order(candidates, needed, fingerprint, starts_at)
        for resource, staff in candidates:
            hold = HoldRecord(
                hold_id=str(uuid.uuid4()),
                business_id=str(business_id),
                holder_id=holder_id,
                service_id=str(service_id),
                location_id=str(location_id),
                staff_id=str(staff or ""),
                resource_id=resource,
                starts_at=plan.starts_at,
                ends_at=plan.ends_at,
                expires_at=now + self.ttl,
                blocked_until=plan.blocked_until,
            )
            outcome, hold_id = await self.store.place(
                hold_id=hold.hold_id,
                resource=resource,
                granules=needed,
                fingerprint=fingerprint,
                holder_id=holder_id,
                ttl_ms=int(self.ttl.total_seconds() * 1000),
                doc=hold.to_json(),
                locator=HoldLocator(
                    str(business_id), resource, ms(plan.starts_at), ms(plan.blocked_until)
                ),
            )
            if outcome == "placed":
                return hold
            if outcome == "existing":
                existing = await self.store.record(resource, hold_id)
                if existing is not None:
                    return HoldRecord.from_json(existing)
        raise HoldConflict("the slot is already held or booked")

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
        survey = await self.store.survey([r for r, _ in candidates], needed, _utc_day(starts_at))
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
        locator = await self.store.locate(hold_id)
        if locator is None or locator.business_id != str(business_id):
            raise NotFound("the hold has expired or does not exist")
        return locator

    @staticmethod
    def _granules(locator: HoldLocator) -> range:
        return granules(
            datetime.fromtimestamp(locator.starts_ms / 1000, UTC),
            datetime.fromtimestamp(locator.blocked_ms / 1000, UTC),
        )

    async def release_hold(self, *, business_id: UUID, hold_id: str, holder_id: str) -> None:
        """Free a hold early; `holder_id` empty means the business itself asks."""
        locator = await self._locate(business_id, hold_id)
        outcome = await self.store.release(locator, hold_id, self._granules(locator), holder_id)
        # Another session's hold answers as if it did not exist, as on booking.
        if outcome <= 0:
            raise NotFound("the hold has expired, was used, or does not exist")

    async def consume_hold(
        self,
        *,
        business_id: UUID,
        hold_id: str,
        booking_id: str,
        holder_id: str,
        pending: timedelta,
    ) -> HoldRecord:
        """Make a hold a booking's pending claim, which lapses after `pending` unless
        confirmed. `holder_id` empty means the business itself books; a session books
        only its own holds (another's answers as if it did not exist, as on release)."""
        if pending <= timedelta(0):
            raise InvalidInput("bad claim", fields={"pending_ms": "must be positive"})
        locator = await self._locate(business_id, hold_id)
        day = _utc_day(datetime.fromtimestamp(locator.starts_ms / 1000, UTC))
        outcome, doc = await self.store.consume(
            locator,
            hold_id,
            self._granules(locator),
            booking_id=booking_id,
            holder_id=holder_id,
            day=day,
            pending_ms=int(pending.total_seconds() * 1000),
            now_ms=ms(self.clock()),
        )
        if outcome == "conflict":
            raise HoldConflict("the slot was booked meanwhile")
        if doc is None:
            raise NotFound("the hold has expired, was used, or does not exist")
        return HoldRecord.from_json(doc)

    async def confirm_claim(
        self,
        *,
        booking_id: str,
        hold_id: str,
        resource: str,
        starts_at: datetime,
        blocked_until: datetime,
        force: bool,
    ) -> bool:
        return await self.store.confirm(
            resource,
            hold_id,
            granules(starts_at, blocked_until),
            booking_id,
            ms(blocked_until),
            force=force,
        )

    async def pending_claims(self, due_before: datetime, limit: int) -> list[tuple[str, datetime]]:
        claims = await self.store.pending_claims(ms(due_before), max(1, min(limit or 100, 1000)))
        return [
            (booking_id, _EPOCH + timedelta(milliseconds=deadline))
            for booking_id, deadline in claims
        ]

    async def forget_claim(self, booking_id: str, deadline: datetime) -> None:
        # Exact arithmetic: the deadline must match the tracked one to the millisecond.
        await self.store.forget_claim(booking_id, (deadline - _EPOCH) // timedelta(milliseconds=1))

    async def restore_hold(self, *, business_id: UUID, hold_id: str, booking_id: str) -> HoldRecord:
        locator = await self._locate(business_id, hold_id)
        record = await self.store.record(locator.resource, hold_id)
        if record is None:
            raise NotFound("the hold has expired")
        hold = HoldRecord.from_json(record)
        day = _utc_day(hold.starts_at)
        if not await self.store.restore(
            locator, hold_id, self._granules(locator), booking_id, day, ms(hold.expires_at)
        ):
            raise NotFound("the hold is not used by this booking")
        return hold

    async def free_interval(
        self, *, booking_id: str, resource: str, starts_at: datetime, blocked_until: datetime
    ) -> None:
        await self.store.free_booking(
            resource, granules(starts_at, blocked_until), booking_id, _utc_day(starts_at)
        )

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
    ) -> datetime:
        """Re-check a rescheduled booking against the catalogue and claim its new
        interval; returns the new end of the blocked interval."""
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
        moved = await self.store.move_booking(
            resource,
            granules(starts_at, blocked_until),
            granules(*old),
            booking_id,
            ms(blocked_until),
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
        claimed = await self.store.claimed(by_resource)
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
