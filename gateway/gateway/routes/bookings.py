"""Bookings: create from a hold, show, update, cancel, list."""

from __future__ import annotations

import orjson
from aiohttp import web
from calendence.booking.v1 import booking_pb2
from calendence.schemas.bookings import BookingFilters, BookingPatch, BookingRequest
from calendence.schemas.common import parse_json

from gateway.appkeys import DOWNSTREAM
from gateway.auth import ALL_KINDS, MANAGING_KINDS, business_of
from gateway.http_io import (
    call,
    page_params,
    page_response,
    path_uuid,
    raw_json_response,
    read_model,
)
from gateway.idempotency import idempotent

routes = web.RouteTableDef()


@routes.post("/api/v1/bookings")
@idempotent
async def create_booking(request: web.Request) -> web.Response:
    business_id = business_of(request, *ALL_KINDS)
    _, body = await read_model(request, BookingRequest)
    booking = await call(
        request,
        request.app[DOWNSTREAM].bookings.CreateBooking,
        booking_pb2.CreateBookingRequest(business_id=business_id, body_json=body),
    )
    return raw_json_response(booking.json, status=201)


@routes.get("/api/v1/bookings/{booking_id}", allow_head=False)
async def show_booking(request: web.Request) -> web.Response:
    business_id = business_of(request, *ALL_KINDS)
    booking = await call(
        request,
        request.app[DOWNSTREAM].bookings.GetBooking,
        booking_pb2.GetBookingRequest(
            business_id=business_id, booking_id=path_uuid(request, "booking_id")
        ),
    )
    return raw_json_response(booking.json)


@routes.patch("/api/v1/bookings/{booking_id}")
async def update_booking(request: web.Request) -> web.Response:
    business_id = business_of(request, *MANAGING_KINDS)
    booking_id = path_uuid(request, "booking_id")
    _, body = await read_model(request, BookingPatch)
    booking = await call(
        request,
        request.app[DOWNSTREAM].bookings.UpdateBooking,
        booking_pb2.UpdateBookingRequest(
            business_id=business_id, booking_id=booking_id, patch_json=body
        ),
    )
    return raw_json_response(booking.json)


@routes.delete("/api/v1/bookings/{booking_id}")
async def cancel_booking(request: web.Request) -> web.Response:
    business_id = business_of(request, *MANAGING_KINDS)
    booking = await call(
        request,
        request.app[DOWNSTREAM].bookings.CancelBooking,
        booking_pb2.CancelBookingRequest(
            business_id=business_id, booking_id=path_uuid(request, "booking_id")
        ),
    )
    return raw_json_response(booking.json)


@routes.get("/api/v1/bookings", allow_head=False)
async def list_bookings(request: web.Request) -> web.Response:
    business_id = business_of(request, *MANAGING_KINDS)
    cursor, limit = page_params(request)
    filters = {k: v for k, v in request.query.items() if k not in ("cursor", "limit")}
    parse_json(BookingFilters, orjson.dumps(filters))  # 422 on bad filters, here already
    page = await call(
        request,
        request.app[DOWNSTREAM].bookings.ListBookings,
        booking_pb2.ListBookingsRequest(
            business_id=business_id, filters_json=orjson.dumps(filters), cursor=cursor, limit=limit
        ),
    )
    return page_response(list(page.items_json), page.next_cursor)
