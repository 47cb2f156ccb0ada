"""What hold-service knows of a business's catalogue: fetched once, dropped on change.

The snapshot holds locations, services, staff, the booking policy and the time off
still to come. booking-service announces every write to any of them (a catalogue
change, time off made or removed, a business's policy changed) on NATS; the cache
drops that business's snapshot so the next hold fetches a fresh one. A TTL bounds
staleness should an announcement be missed.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from calendence.schemas.catalogue import WeeklyHours
from calendence.schemas.scheduling import effective_policy

# Opening ranges per weekday (0 = Monday) as (open, close) minutes after local
# midnight: plain tuples, so computations on them can be cached by value.
Week = tuple[tuple[tuple[int, int], ...], ...]


def week_of(hours: WeeklyHours) -> Week:
    return tuple(tuple(hours.ranges(weekday)) for weekday in range(7))


# Instants [start, end) when someone is away or somewhere is closed, in start order.
Spans = tuple[tuple[datetime, datetime], ...]


@dataclass(frozen=True)
class Policy:
    """The booking rules a slot is checked against (those hold-service applies)."""

    min_notice_minutes: int = 0
    max_advance_days: int = 365
    slot_step_minutes: int = 15


@dataclass(frozen=True)
class Location:
    id: UUID
    timezone: str
    hours: Week
    closures: Spans = ()


@dataclass(frozen=True)
class Service:
    id: UUID
    duration_minutes: int
    buffer_minutes: int
    active: bool
    location_ids: frozenset[UUID]
    policy: Policy = Policy()


@dataclass(frozen=True)
class StaffMember:
    id: UUID
    service_ids: frozenset[UUID]
    location_ids: frozenset[UUID]
    hours: Week | None
    time_off: Spans = ()


def policy_of(
    business_policy: dict[str, Any] | None, service_policy: dict[str, Any] | None
) -> Policy:
    rules = effective_policy(business_policy, service_policy)
    return Policy(
        rules["min_notice_minutes"], rules["max_advance_days"], rules["slot_step_minutes"]
    )


def _spans_by_subject(rows: list[dict[str, Any]], column: str) -> dict[UUID, Spans]:
    found: defaultdict[UUID, list[tuple[datetime, datetime]]] = defaultdict(list)
    for row in rows:
        if row.get(column):
            found[UUID(row[column])].append(
                (datetime.fromisoformat(row["starts_at"]), datetime.fromisoformat(row["ends_at"]))
            )
    return {subject: tuple(sorted(spans)) for subject, spans in found.items()}


@dataclass(frozen=True)
class BusinessCatalogue:
    locations: dict[UUID, Location]
    services: dict[UUID, Service]
    staff: dict[UUID, StaffMember]

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> BusinessCatalogue:
        time_off = snapshot.get("time_off", [])
        closures = _spans_by_subject(time_off, "location_id")
        away = _spans_by_subject(time_off, "staff_id")
        business_policy = snapshot.get("booking_policy")
        return cls(
            locations={
                UUID(row["id"]): Location(
                    UUID(row["id"]),
                    row["timezone"],
                    week_of(WeeklyHours.model_validate(row["opening_hours"])),
                    closures.get(UUID(row["id"]), ()),
                )
                for row in snapshot["locations"]
            },
            services={
                UUID(row["id"]): Service(
                    UUID(row["id"]),
                    row["duration_minutes"],
                    row["buffer_minutes"],
                    row["active"],
                    frozenset(UUID(i) for i in row["location_ids"]),
                    policy_of(business_policy, row.get("booking_policy")),
                )
                for row in snapshot["services"]
            },
            staff={
                UUID(row["id"]): StaffMember(
                    UUID(row["id"]),
                    frozenset(UUID(i) for i in row["service_ids"]),
                    frozenset(UUID(i) for i in row["location_ids"]),
                    week_of(WeeklyHours.model_validate(row["weekly_hours"]))
                    if row["weekly_hours"]
                    else None,
                    away.get(UUID(row["id"]), ()),
                )
                for row in snapshot["staff"]
            },
        )


Fetch = Callable[[UUID], Awaitable[dict[str, Any]]]


class CatalogueCache:
    def __init__(self, fetch: Fetch, ttl_seconds: float) -> None:
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._entries: dict[UUID, tuple[float, BusinessCatalogue]] = {}
        # Bumped by invalidate(): a fetch that started before a change is not cached.
        self._generation: dict[UUID, int] = {}
        # One fetch per business at a time: a burst on a cold cache waits for it.
        self._loading: dict[UUID, asyncio.Task[BusinessCatalogue]] = {}

    async def get(self, business_id: UUID) -> BusinessCatalogue:
        entry = self._entries.get(business_id)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        loading = self._loading.get(business_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(business_id))
            self._loading[business_id] = loading
            loading.add_done_callback(lambda done: self._forget(business_id, done))
        # A caller that gives up does not cancel the fetch the others wait for.
        return await asyncio.shield(loading)

    async def _load(self, business_id: UUID) -> BusinessCatalogue:
        generation = self._generation.get(business_id, 0)
        started = time.monotonic()
        catalogue = BusinessCatalogue.from_snapshot(await self._fetch(business_id))
        if self._generation.get(business_id, 0) == generation:
            self._entries[business_id] = (started + self._ttl, catalogue)
        return catalogue

    def _forget(self, business_id: UUID, done: asyncio.Task[BusinessCatalogue]) -> None:
        if self._loading.get(business_id) is done:
            del self._loading[business_id]
        if not done.cancelled():
            done.exception()  # retrieved by the waiters; never "never retrieved"

    def invalidate(self, business_id: UUID) -> None:
        self._generation[business_id] = self._generation.get(business_id, 0) + 1
        self._entries.pop(business_id, None)
        # Callers from now on must not join a fetch that may predate the change.
        self._loading.pop(business_id, None)
