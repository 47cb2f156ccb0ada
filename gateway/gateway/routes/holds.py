"""Holding a slot, releasing a hold, and listing bookable times."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from calendence.hold.v1 import hold_pb2
from calendence.schemas.common import parse_json
from calendence.schemas.holds import AvailabilityQuery, HoldRequest
from calendence.timefmt import from_timestamp, to_iso, to_timestamp

from gateway.appkeys import DOWNSTREAM
from gateway.auth import ALL_KINDS, KeyKind, business_of, principal_of
from gateway.http_io import call, json_response, path_uuid, read_model
from gateway.idempotency import idempotent

routes = web.RouteTableDef()


def hold_document(hold: hold_pb2.Hold) -> dict[str, str]:
    document = {
        "hold_id": hold.hold_id,
        "service_id": hold.service_id,
        "location_id": hold.location_id,
        "starts_at": to_iso(from_timestamp(hold.starts_at)),
        "ends_at": to_iso(from_timestamp(hold.ends_at)),
        "expires_at": to_iso(from_timestamp(hold.expires_at)),
    }
    if hold.staff_id:
        document["staff_id"] = hold.staff_id
    return document


@routes.post("/api/v1/bookings/hold")
@idempotent
async def place_hold(request: web.Request) -> web.Response:
    business_id = business_of(request, *ALL_KINDS)
    wanted, _ = await read_model(request, HoldRequest)
    hold = await call(
        request,
        request.app[DOWNSTREAM].holds.PlaceHold,
        hold_pb2.PlaceHoldRequest(
            business_id=business_id,
            holder_id=principal_of(request).key_id,
            service_id=str(wanted.service_id),
            location_id=str(wanted.location_id),
            staff_id=str(wanted.staff_id or ""),
            starts_at=to_timestamp(wanted.starts_at),
        ),
    )
    return json_response(hold_document(hold), status=201)


@routes.delete("/api/v1/bookings/hold/{hold_id}")
async def release_hold(request: web.Request) -> web.Response:
    business_id = business_of(request, *ALL_KINDS)
    principal = principal_of(request)
    await call(
        request,
        request.app[DOWNSTREAM].holds.ReleaseHold,
        hold_pb2.ReleaseHoldRequest(
            business_id=business_id,
            hold_id=path_uuid(request, "hold_id"),
            # A session releases only its own holds; the business may release any of its own.
            holder_id=principal.key_id if principal.kind is KeyKind.SESSION else "",
        ),
    )
    return web.Response(status=204)


# An offset typed into a URL unencoded (`from=2027-03-28T00:00:00+00:00`) arrives with
# its `+` decoded as a space; a time never has a space there, so it is read back as `+`.
_SPACED_OFFSET = re.compile(r"^(\S+T[\d:.]+) (\d\d(?::?\d\d)?)$")


def _query_with_offsets(request: web.Request) -> dict[str, str]:
    query = dict(request.query)
    for name in ("from", "to"):
        if name in query:
            query[name] = _SPACED_OFFSET.sub(r"\1+\2", query[name])
    return query


@routes.get("/api/v1/availability", allow_head=False)
async def availability(request: web.Request) -> web.Response:
    business_id = business_of(request, *ALL_KINDS)
    query = parse_json(AvailabilityQuery, orjson.dumps(_query_with_offsets(request)))
    answer = await call(
        request,
        request.app[DOWNSTREAM].holds.GetAvailability,
        hold_pb2.AvailabilityRequest(
            business_id=business_id,
            service_id=str(query.service_id),
            location_id=str(query.location_id),
            staff_id=str(query.staff_id or ""),
            to=to_timestamp(query.to),
            **{"from": to_timestamp(query.from_)},
        ),
    )
    zone = ZoneInfo(answer.timezone)
    return json_response(
        {
            "object": "availability",
            "service_id": str(query.service_id),
            "location_id": str(query.location_id),
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
    )
