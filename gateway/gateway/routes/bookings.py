"""Bookings: create from a hold, show, update, cancel, list."""

from __future__ import annotations

import orjson
from aiohttp import web
from calendence.booking.v1 import booking_pb2
from calendence.schemas.bookings import (
    BOOKING_EXAMPLE,
    BOOKING_REQUEST_EXAMPLE,
    DEPOSIT_BOOKING_EXAMPLE,
    Booking,
    BookingFilters,
    BookingList,
    BookingPatch,
    BookingRequest,
)

from gateway.appkeys import DOWNSTREAM
from gateway.auth import ALL_KINDS, MANAGING_KINDS, principal_of
from gateway.contract import (
    BOOKINGS_PAGE,
    Body,
    Operation,
    Reply,
    page_of_request,
    query_document,
    route,
)
from gateway.http_io import call, page_response, raw_json_response

TAG = "Bookings"


def _business(request: web.Request) -> str:
    return principal_of(request).business_id


async def create_booking(request: web.Request) -> web.Response:
    booking = await call(
        request,
        request.app[DOWNSTREAM].bookings.CreateBooking,
        booking_pb2.CreateBookingRequest(
            business_id=_business(request), body_json=await request.read()
        ),
    )
    return raw_json_response(booking.json, status=201)


async def show_booking(request: web.Request) -> web.Response:
    booking = await call(
        request,
        request.app[DOWNSTREAM].bookings.GetBooking,
        booking_pb2.GetBookingRequest(
            business_id=_business(request), booking_id=request.match_info["booking_id"]
        ),
    )
    return raw_json_response(booking.json)


async def update_booking(request: web.Request) -> web.Response:
    booking = await call(
        request,
        request.app[DOWNSTREAM].bookings.UpdateBooking,
        booking_pb2.UpdateBookingRequest(
            business_id=_business(request),
            booking_id=request.match_info["booking_id"],
            patch_json=await request.read(),
        ),
    )
    return raw_json_response(booking.json)


async def cancel_booking(request: web.Request) -> web.Response:
    booking = await call(
        request,
        request.app[DOWNSTREAM].bookings.CancelBooking,
        booking_pb2.CancelBookingRequest(
            business_id=_business(request), booking_id=request.match_info["booking_id"]
        ),
    )
    return raw_json_response(booking.json)


async def list_bookings(request: web.Request) -> web.Response:
    cursor, limit = page_of_request(request)
    page = await call(
        request,
        request.app[DOWNSTREAM].bookings.ListBookings,
        booking_pb2.ListBookingsRequest(
            business_id=_business(request),
            # Checked already; booking-service reads the same names.
            filters_json=orjson.dumps(query_document(request, LIST_BOOKINGS)),
            cursor=cursor,
            limit=limit,
        ),
    )
    return page_response(list(page.items_json), page.next_cursor)


LIST_BOOKINGS = Operation(
    "GET",
    "/api/v1/bookings",
    summary="List bookings",
    tag=TAG,
    keys=MANAGING_KINDS,
    description="In the order they were made, one page at a time (pass `next_cursor` back "
    "as `cursor`). "
    "Filters combine; `from`/`to` select bookings starting in [from, to).",
    query=BookingFilters,
    paged=True,
    replies=(Reply(200, BookingList, "One page of bookings"),),
)

routes = [
    route(
        Operation(
            "POST",
            "/api/v1/bookings",
            summary="Create a booking",
            tag=TAG,
            keys=ALL_KINDS,
            description="Convert a hold into a booking; the hold is consumed, so one hold "
            "makes at most one booking. If the hold has expired (or was used), a 404 is "
            "returned. If the service requires a deposit, the booking is `pending` and the "
            "response includes a `redirect_url` to Stripe Checkout; paying confirms it.",
            body=Body(BookingRequest, examples={BOOKINGS_PAGE: BOOKING_REQUEST_EXAMPLE}),
            replies=(
                Reply(
                    201,
                    Booking,
                    "The full booking resource with service, location, client and staff details",
                    examples={
                        "A booking (no deposit)": BOOKING_EXAMPLE,
                        "A service with a deposit: pending until paid at redirect_url": (
                            DEPOSIT_BOOKING_EXAMPLE
                        ),
                    },
                ),
            ),
            idempotent=True,
            errors={
                404: "The hold has expired, was used, or belongs to another business",
                409: "The slot was taken meanwhile, or the hold is another session's",
                503: "Stripe (for a deposit) or a service behind the API is unavailable; "
                "nothing was written and the hold is kept for a retry",
            },
        ),
        create_booking,
    ),
    route(
        Operation(
            "GET",
            "/api/v1/bookings/{booking_id}",
            summary="Show a booking",
            tag=TAG,
            keys=ALL_KINDS,
            description="Available to all key types. Returns the booking with relationships.",
            replies=(Reply(200, Booking, "The booking", examples={"A booking": BOOKING_EXAMPLE}),),
        ),
        show_booking,
    ),
    route(
        Operation(
            "PATCH",
            "/api/v1/bookings/{booking_id}",
            summary="Update a booking",
            tag=TAG,
            keys=MANAGING_KINDS,
            description="Requires a business or hub API key — not available to session "
            "tokens. Reschedule (`starts_at`, and `ends_at` to change the length), move the "
            "status along, or edit the notes. An illegal status change is 409 with the reason.",
            body=Body(BookingPatch),
            replies=(Reply(200, Booking, "The updated booking"),),
            errors={409: "An illegal status change, or the new time is taken"},
        ),
        update_booking,
    ),
    route(
        Operation(
            "DELETE",
            "/api/v1/bookings/{booking_id}",
            summary="Cancel a booking",
            tag=TAG,
            keys=MANAGING_KINDS,
            description="Requires a business or hub API key. Sets status to cancelled and "
            "records cancelled_at; frees the slot. Triggers the booking.cancelled webhook "
            "event. Idempotent: cancelling a cancelled booking answers it unchanged.",
            replies=(Reply(200, Booking, "The cancelled booking"),),
            errors={409: "A completed booking cannot be cancelled"},
        ),
        cancel_booking,
    ),
    route(LIST_BOOKINGS, list_bookings),
]
