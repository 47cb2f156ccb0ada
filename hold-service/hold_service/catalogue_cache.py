"""What hold-service knows of a business's catalogue: read once, dropped on change.

The snapshot holds locations, services, staff, the booking policy and the time off
still to come. booking-service writes it to the NATS key-value bucket after every
change to any of them commits (before it answers the change); hold-service reads it
from there, never from booking-service. A watch on the bucket reports each new
revision, and the cache drops that business's older snapshot so the next hold reads
the new one. While the link to NATS is down nothing is answered from the cache (a
change could go by unheard): callers get Unavailable, and after a reconnect every
snapshot is read afresh. A TTL bounds staleness should the watch ever miss a revision.
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

from calendence.errors import Unavailable
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


# A business's snapshot as the bucket holds it: (revision, document). Raises
# Unavailable when there is none yet or NATS does not answer.
Read = Callable[[UUID], Awaitable[tuple[int, dict[str, Any]]]]
# The current link to NATS: a number that changes with every reconnect, or None while
# the link is down.
Link = Callable[[], int | None]


@dataclass(frozen=True)
class _Entry:
    expires_at: float
    revision: int
    catalogue: BusinessCatalogue


class CatalogueCache:
    def __init__(self, read: Read, ttl_seconds: float, link: Link) -> None:
        self._read = read
        self._ttl = ttl_seconds
        self._link = link
        self._link_seen = link()
        self._entries: dict[UUID, _Entry] = {}
        # Bumped by invalidate(): a read that started before a change is not cached.
        self._generation: dict[UUID, int] = {}
        # One read per business at a time: a burst on a cold cache waits for it.
        self._loading: dict[UUID, asyncio.Task[BusinessCatalogue]] = {}

    async def get(self, business_id: UUID) -> BusinessCatalogue:
        self._check_link()
        entry = self._entries.get(business_id)
        if entry is not None and entry.expires_at > time.monotonic():
            return entry.catalogue
        loading = self._loading.get(business_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(business_id))
            self._loading[business_id] = loading
            loading.add_done_callback(lambda done: self._forget(business_id, done))
        # A caller that gives up does not cancel the read the others wait for.
        return await asyncio.shield(loading)

    def _check_link(self) -> None:
        link = self._link()
        if link is None:
            raise Unavailable("the catalogue store is unreachable; try again shortly")
        if link != self._link_seen:
            # Reconnected: changes may have gone by unheard while the link was down.
            self._link_seen = link
            for business_id in set(self._entries) | set(self._loading):
                self.invalidate(business_id)

    async def _load(self, business_id: UUID) -> BusinessCatalogue:
        generation = (self._link_seen, self._generation.get(business_id, 0))
        started = time.monotonic()
        revision, snapshot = await self._read(business_id)
        catalogue = BusinessCatalogue.from_snapshot(snapshot)
        if (self._link_seen, self._generation.get(business_id, 0)) == generation:
            self._entries[business_id] = _Entry(started + self._ttl, revision, catalogue)
        return catalogue

    def _forget(self, business_id: UUID, done: asyncio.Task[BusinessCatalogue]) -> None:
        if self._loading.get(business_id) is done:
            del self._loading[business_id]
        if not done.cancelled():
            done.exception()  # retrieved by the waiters; never "never retrieved"

    def changed(self, business_id: UUID, revision: int) -> None:
        """The bucket holds `revision` of the business's snapshot now."""
        entry = self._entries.get(business_id)
        if entry is not None and entry.revision >= revision and business_id not in self._loading:
            return  # the watch caught up with a snapshot already read
        self.invalidate(business_id)

    def invalidate(self, business_id: UUID) -> None:
        self._generation[business_id] = self._generation.get(business_id, 0) + 1
        self._entries.pop(business_id, None)
        # Callers from now on must not join a read that may predate the change.
        self._loading.pop(business_id, None)
