"""Clients managing their own booking through its manage link: see it, cancel it, move it.

Cancelling and moving go through Bookings like a business's change (same checks,
same events, the slot claimed and moved in one step), with the client as the actor;
what a client may do on top is bounded by the business's client cutoffs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from calendence.errors import Conflict, NotFound
from calendence.schemas.bookings import LIVE_STATUSES, Actor, BookingPatch, BookingStatus
from calendence.schemas.common import parse_json
from calendence.schemas.manage import ManageCancelRequest
from calendence.timefmt import to_iso, utcnow

from booking_service.bookings import Bookings, render
from booking_service.catalogue_repository import CatalogueRepository
from booking_service.manage_links import DEAD_LINK, ManageLinks, usable
from booking_service.manage_repository import ManageRepository


@dataclass(frozen=True)
class ClientRules:
    """What a business lets its clients do themselves."""

    cancel_cutoff_minutes: int
    reschedule_cutoff_minutes: int
    # How far ahead bookings are made (the end of a staff member's calendar feed).
    max_advance_days: int


RulesOf = Callable[[UUID], Awaitable[ClientRules]]


@dataclass(frozen=True)
class Cutoff:
    """Something a client may do until some minutes before the appointment."""

    rule: str  # the booking policy's setting
    action: str  # how a refusal names what the client tried
    minutes: Callable[[ClientRules], int]


CANCEL_CUTOFF = Cutoff(
    "client_cancel_cutoff_minutes", "cancel", lambda rules: rules.cancel_cutoff_minutes
)
RESCHEDULE_CUTOFF = Cutoff(
    "client_reschedule_cutoff_minutes",
    "move a booking",
    lambda rules: rules.reschedule_cutoff_minutes,
)


def rules_in(policy: Mapping[str, Any]) -> ClientRules:
    """The client's rules within a booking policy (a business's, or one a booking keeps)."""
    return ClientRules(
        int(policy.get("client_cancel_cutoff_minutes", 0)),
        int(policy.get("client_reschedule_cutoff_minutes", 0)),
        int(policy.get("max_advance_days", 365)),
    )


def rules_of_businesses(policies: CatalogueRepository) -> RulesOf:
    """The one place a business's client rules come from: its booking policy."""

    async def rules_of(business_id: UUID) -> ClientRules:
        return rules_in(await policies.booking_policy(business_id))

    return rules_of


@dataclass(frozen=True)
class Managed:
    """A booking reached through its manage link: the client's view and what it is."""

    view: dict[str, Any]
    row: dict[str, Any]


@dataclass
class SelfService:
    bookings: Bookings
    links: ManageLinks
    repository: ManageRepository
    rules_of: RulesOf
    clock: Callable[[], datetime] = utcnow

    async def booking(self, token: str) -> dict[str, Any]:
        """The booking row a working link names; NotFound otherwise."""
        row = await self.repository.booking(await self.links.booking_of(token))
        if row is None or not usable(row, self.clock()):
            raise NotFound(DEAD_LINK)
        row["manage_url"] = self.links.url_for(row)
        return row

    async def show(self, token: str) -> Managed:
        row = await self.booking(token)
        return Managed(await self._view(render(row), row), row)

    async def cancel(self, token: str, body: bytes) -> Managed:
        request = parse_json(ManageCancelRequest, body or b"{}")
        row = await self._before_cutoff(token, CANCEL_CUTOFF)
        document = await self.bookings.cancel(
            row["business_id"], row["id"], actor=Actor.CLIENT, reason=request.cancellation_reason
        )
        return Managed(await self._view(document, row), row)

    async def reschedule(self, token: str, starts_at: datetime) -> Managed:
        row = await self._before_cutoff(token, RESCHEDULE_CUTOFF)
        document = await self.bookings.update(
            row["business_id"], row["id"], BookingPatch(starts_at=starts_at), actor=Actor.CLIENT
        )
        return Managed(await self._view(document, row), row)

    async def _before_cutoff(self, token: str, cutoff: Cutoff) -> dict[str, Any]:
        """The booking row a working link names, while its client may still do what
        `cutoff` allows; Conflict once the booking's cutoff has passed."""
        row = await self.booking(token)
        minutes = cutoff.minutes(await self.rules_for(row))
        if self.clock() > row["starts_at"] - timedelta(minutes=minutes):
            raise Conflict(
                f"too late for that under the business's {cutoff.rule} rule: clients may "
                f"{cutoff.action} up to {minutes} minutes before the appointment; contact "
                "the business"
            )
        return row

    async def rules_for(self, row: dict[str, Any]) -> ClientRules:
        """The rules the booking was made under; the business's own for older bookings,
        made before bookings kept theirs."""
        if row["policy"] is not None:
            return rules_in(row["policy"])
        return await self.rules_of(row["business_id"])

    async def _view(self, document: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        return client_view(document, await self.rules_for(row), self.clock())


def client_view(document: dict[str, Any], rules: ClientRules, now: datetime) -> dict[str, Any]:
    """The booking document cut down to what its client may see, with what they may do."""
    starts_at = datetime.fromisoformat(document["starts_at"])
    live = document["status"] in LIVE_STATUSES and document["manage_url"] is not None
    cancel_until = starts_at - timedelta(minutes=rules.cancel_cutoff_minutes)
    reschedule_until = starts_at - timedelta(minutes=rules.reschedule_cutoff_minutes)
    # Moving an appointment that has begun makes no sense whatever the cutoff.
    reschedule_until = min(reschedule_until, starts_at)
    service, location, staff = document["service"], document["location"], document["staff"]
    payment = document["payment"]
    manage_url = document["manage_url"]
    return {
        "object": "managed_booking",
        "id": document["id"],
        "status": document["status"],
        "starts_at": document["starts_at"],
        "ends_at": document["ends_at"],
        "service": {
            "name": service["name"],
            "duration_minutes": service["duration_minutes"],
            "price_amount": service["price_amount"],
            "currency": service["currency"],
        },
        "location": {
            "name": location["name"],
            "address": location["address"],
            "timezone": location["timezone"],
        },
        "staff": {"name": staff["name"]} if staff else None,
        "client": document["client"],
        "payment": ({k: payment[k] for k in ("status", "amount", "currency")} if payment else None),
        "redirect_url": document["redirect_url"],
        "cancelled_at": document["cancelled_at"],
        "cancelled_by": document["cancelled_by"],
        "cancellation_reason": document["cancellation_reason"],
        "manage_url": manage_url,
        "calendar_url": f"{manage_url}/booking.ics" if manage_url else None,
        "can_cancel": live and now <= cancel_until,
        "cancel_until": to_iso(cancel_until) if live else None,
        "can_reschedule": live
        and document["status"] != BookingStatus.IN_PROGRESS
        and now <= reschedule_until,
        "reschedule_until": to_iso(reschedule_until) if live else None,
        "rules": {
            "client_cancel_cutoff_minutes": rules.cancel_cutoff_minutes,
            "client_reschedule_cutoff_minutes": rules.reschedule_cutoff_minutes,
        },
    }
