"""Time off and closures for business and hub keys: a staff member away, a location shut."""

from __future__ import annotations

import orjson
from aiohttp import web
from calendence.catalogue.v1 import catalogue_pb2
from calendence.schemas.scheduling import (
    TimeOff,
    TimeOffCreated,
    TimeOffFields,
    TimeOffFilters,
    TimeOffList,
)

from gateway.appkeys import DOWNSTREAM
from gateway.auth import principal_of
from gateway.contract import Body, Reply, query_document, route
from gateway.relay import item_relay, relay_document, relay_no_content, relay_page
from gateway.resource import Resource


def _ref(request: web.Request) -> catalogue_pb2.TimeOffRef:
    return catalogue_pb2.TimeOffRef(
        business_id=principal_of(request).business_id, id=request.match_info["id"]
    )


async def create_time_off(request: web.Request) -> web.Response:
    message = catalogue_pb2.CreateTimeOffRequest(
        business_id=principal_of(request).business_id, body_json=await request.read()
    )
    return await relay_document(
        request, request.app[DOWNSTREAM].catalogue.CreateTimeOff, message, status=201
    )


async def list_time_off(request: web.Request) -> web.Response:
    query = catalogue_pb2.ListTimeOffRequest(
        business_id=principal_of(request).business_id,
        filters_json=orjson.dumps(query_document(request, LIST_TIME_OFF)),
    )
    return await relay_page(request, request.app[DOWNSTREAM].catalogue.ListTimeOff, query)


show_time_off = item_relay(lambda services: services.catalogue.GetTimeOff, _ref)


async def delete_time_off(request: web.Request) -> web.Response:
    return await relay_no_content(
        request, request.app[DOWNSTREAM].catalogue.DeleteTimeOff, _ref(request)
    )


TIME_OFF = Resource(
    collection="/api/v1/time-off",
    item="/api/v1/time-off/{id}",
    tag="Time off",
    one="time off",
)
LIST_TIME_OFF = TIME_OFF.operation(
    "list",
    Reply(200, TimeOffList, "One page of time off"),
    summary="List time off and closures",
    description="In the order they were made. `staff_id` or `location_id` pick one "
    "subject; `from`/`to` select time off overlapping [from, to).",
    query=TimeOffFilters,
)

routes = [
    TIME_OFF.route(
        "create",
        create_time_off,
        Reply(201, TimeOffCreated, "The time off, with the bookings inside it"),
        summary="Give a staff member time off, or close a location",
        description="Exactly one of `staff_id` (time off) and `location_id` (a "
        "closure); at most 366 days long. Availability stops offering the time and "
        "holds inside it are 422 naming `starts_at`; with no `staff_id` asked for, "
        "another free staff member is picked. Live bookings inside it are not moved "
        "or cancelled: they are listed in `conflicting_booking_ids`. Holds already "
        "placed stay.",
        body=Body(TimeOffFields),
        conflicts=False,
        errors={422: "Invalid fields, or an id that names nothing in this business"},
    ),
    route(LIST_TIME_OFF, list_time_off),
    TIME_OFF.route("get", show_time_off, Reply(200, TimeOff, "The time off"), "Show time off"),
    TIME_OFF.route(
        "delete",
        delete_time_off,
        Reply(204, None, "Removed"),
        summary="Remove time off",
        description="The time is offered again wherever hours allow.",
        conflicts=False,
    ),
]
