"""Holding a slot, releasing a hold, and listing bookable times."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from calendence.errors import NotFound
from calendence.hold.v1 import hold_pb2
from calendence.principals import KeyKind
from calendence.schemas.holds import (
    HOLD_EXAMPLE,
    HOLD_REQUEST_EXAMPLE,
    Availability,
    AvailabilityQuery,
    Hold,
    HoldRequest,
)
from calendence.settings import GatewaySettings
from calendence.timefmt import from_timestamp, iso_of_timestamp, to_timestamp

from gateway.appkeys import DOWNSTREAM, HOLD_PLACER, SETTINGS
from gateway.auth import ALL_KINDS, principal_of
from gateway.contract import (
    BOOKINGS_PAGE,
    Body,
    Operation,
    Reply,
    route,
    validated_body,
    validated_query,
)
from gateway.delivery import undo_unless_delivered
from gateway.http_io import call, json_response
from gateway.relay import relay_no_content

TAG = "Bookings"


async def place_hold(request: web.Request) -> web.Response:
    principal = principal_of(request)
    wanted = validated_body(request, HoldRequest)
    downstream = request.app[DOWNSTREAM]
    hold = await request.app[HOLD_PLACER].place(
        hold_pb2.PlaceHoldRequest(
            business_id=principal.business_id,
            holder_id=principal.key_id,
            service_id=str(wanted.service_id),
            location_id=str(wanted.location_id),
            staff_id=str(wanted.staff_id or ""),
            starts_at=to_timestamp(wanted.starts_at),
        )
    )

    async def give_back() -> None:
        with contextlib.suppress(NotFound):  # expired or released meanwhile
            await call(
                request,
                downstream.holds.ReleaseHold,
                hold_pb2.ReleaseHoldRequest(
                    business_id=principal.business_id, hold_id=hold.hold_id
                ),
            )

    # A hold its client never heard of would block the slot for nothing until it expires.
    undo_unless_delivered(request, give_back)
    await _fault_after_placement(request.app[SETTINGS])
    return web.Response(body=hold_answer(hold), status=201, content_type="application/json")


def hold_answer(hold: hold_pb2.PlacedHold) -> bytes:
    """The `Hold` document, field for field (tests hold it to the model), written
    straight from hold-service's answer: validating our own service's ids and times
    into the model first cost a tenth of the gateway's work on a hold."""
    document = {
        "hold_id": hold.hold_id,
        "service_id": hold.service_id,
        "location_id": hold.location_id,
        "starts_at": iso_of_timestamp(hold.starts_at),
        "ends_at": iso_of_timestamp(hold.ends_at),
        "expires_at": iso_of_timestamp(hold.expires_at),
    }
    if hold.staff_id:
        document["staff_id"] = hold.staff_id
    return orjson.dumps(document)


class InjectedFault(Exception):
    """The failure GATEWAY_FAULT_AFTER_HOLD_PLACED=fail asks for (tests only)."""


async def _fault_after_placement(settings: GatewaySettings) -> None:
    fault = settings.gateway_fault_after_hold_placed
    if fault == "fail":
        raise InjectedFault("injected failure after the hold was placed")
    if fault == "pause":
        await asyncio.sleep(settings.gateway_fault_pause_seconds)


async def release_hold(request: web.Request) -> web.Response:
    principal = principal_of(request)
    return await relay_no_content(
        request,
        request.app[DOWNSTREAM].holds.ReleaseHold,
        hold_pb2.ReleaseHoldRequest(
            business_id=principal.business_id,
            hold_id=request.match_info["hold_id"],
            # A session releases only its own holds; the business may release any of its own.
            holder_id=principal.key_id if principal.kind is KeyKind.SESSION else "",
        ),
    )


async def availability(request: web.Request) -> web.Response:
    query = validated_query(request, AvailabilityQuery)
    return json_response(
        await free_times(
            request,
            business_id=principal_of(request).business_id,
            service_id=str(query.service_id),
            location_id=str(query.location_id),
            staff_id=str(query.staff_id or ""),
            start=query.from_,
            end=query.to,
        )
    )


async def free_times(
    request: web.Request,
    *,
    business_id: str,
    service_id: str,
    location_id: str,
    staff_id: str,
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    """The availability document: bookable start times in the location's time zone."""
    answer = await call(
        request,
        request.app[DOWNSTREAM].holds.GetAvailability,
        hold_pb2.AvailabilityRequest(
            business_id=business_id,
            service_id=service_id,
            location_id=location_id,
            staff_id=staff_id,
            start=to_timestamp(start),
            end=to_timestamp(end),
        ),
    )
    zone = ZoneInfo(answer.timezone)
    return {
        "object": "availability",
        "service_id": service_id,
        "location_id": location_id,
        "timezone": answer.timezone,
        "slots": [
            {
                "starts_at": from_timestamp(slot.starts_at).astimezone(zone).isoformat(),
                "ends_at": from_timestamp(slot.ends_at).astimezone(zone).isoformat(),
                "staff_ids": list(slot.staff_ids),
            }
            for slot in answer.slots
        ],
    }


routes = [
    route(
        Operation(
            "POST",
            "/api/v1/bookings/hold",
            name="create_hold",
            summary="Hold a slot",
            tag=TAG,
            key_kinds=ALL_KINDS,
            description="Before creating a booking, place a hold on the time slot to prevent "
            "double bookings. Holds expire after 10 minutes. A hold covers the service's "
            "whole duration of one resource (the staff member, or the location when the "
            "service has no staff): any overlapping hold or booking makes it 409. The same "
            "session asking again for the slot it holds gets its hold back.",
            body=Body(
                HoldRequest,
                examples={BOOKINGS_PAGE: HOLD_REQUEST_EXAMPLE},
            ),
            replies=(Reply(201, Hold, "The slot is held", examples={BOOKINGS_PAGE: HOLD_EXAMPLE}),),
            idempotent=True,
            errors={
                404: "No such service or location (or staff member) in this business",
                409: "The slot is already held or booked",
                422: "Invalid fields: a time without an offset, in the past, or outside "
                "opening hours",
            },
        ),
        place_hold,
    ),
    route(
        Operation(
            "DELETE",
            "/api/v1/bookings/hold/{hold_id}",
            name="release_hold",
            summary="Release a hold early",
            tag=TAG,
            key_kinds=ALL_KINDS,
            description="Frees the slot at once. A session token releases only its own holds.",
            replies=(Reply(204, None, "Released"),),
            conflicts=False,
            errors={
                404: "No such live hold (expired, used, never made, or another session's)",
            },
        ),
        release_hold,
    ),
    route(
        Operation(
            "GET",
            "/api/v1/availability",
            name="get_availability",
            summary="Bookable start times",
            tag=TAG,
            key_kinds=ALL_KINDS,
            description="The start times at which the service can be held, net of bookings "
            "and live holds, in the location's time zone; at most 31 days per call.",
            query=AvailabilityQuery,
            replies=(Reply(200, Availability, "The free start times"),),
        ),
        availability,
    ),
]
