"""Bookings: create from a hold, show, update, cancel, list."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web
from calendence.booking.v1 import booking_pb2
from calendence.notify.v1 import notify_pb2
from calendence.principals import KeyKind
from calendence.schemas.bookings import (
    BOOKING_EXAMPLE,
    BOOKING_REQUEST_EXAMPLE,
    DEPOSIT_BOOKING_EXAMPLE,
    Booking,
    BookingFilters,
    BookingList,
    BookingPatch,
    BookingRequest,
    Cancellation,
)
from calendence.schemas.messaging import ClientMessageList

from gateway.appkeys import DOWNSTREAM
from gateway.auth import ALL_KINDS, MANAGING_KINDS, principal_of
from gateway.contract import (
    BOOKINGS_PAGE,
    Body,
    Operation,
    Reply,
    query_document,
    route,
)
from gateway.http_io import call, page_response, raw_json_response
from gateway.idempotency import REPLAYED_HEADER, idempotency_key_bytes
from gateway.relay import relay_page

TAG = "Bookings"


def _business(request: web.Request) -> str:
    return principal_of(request).business_id


async def create_booking(request: web.Request) -> web.Response:
    principal = principal_of(request)
    booking = await call(
        request,
        request.app[DOWNSTREAM].bookings.CreateBooking,
        booking_pb2.CreateBookingRequest(
            business_id=principal.business_id,
            body_json=await request.read(),
            # A session books only its own holds; the business any of its own.
            holder_id=principal.key_id if principal.kind is KeyKind.SESSION else "",
            # Recorded with the booking, so a retry is replayed even if Redis forgot it.
            idempotency_key=idempotency_key_bytes(request),
        ),
    )
    response = raw_json_response(booking.json, status=201)
    if booking.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


# A strong entity tag as this API writes it: the booking's version, quoted.
_VERSION_TAG = re.compile(r'^"(\d{1,9})"$')


def _with_etag(document: bytes) -> web.Response:
    """The booking answer, with its version as a strong ETag."""
    response = raw_json_response(document)
    response.headers["ETag"] = f'"{orjson.loads(document)["version"]}"'
    return response


def _if_match(request: web.Request) -> tuple[bool, list[int]]:
    """(If-Match sent, the versions it accepts). `*` accepts any; a weak or foreign tag
    matches nothing (If-Match compares strongly), so it is answered 412."""
    header = request.headers.get("If-Match")
    if header is None:
        return False, []
    tags = [tag.strip() for tag in header.split(",") if tag.strip()]
    if "*" in tags:
        return False, []
    return True, [int(m[1]) for tag in tags if (m := _VERSION_TAG.match(tag))]


def _change_target(request: web.Request) -> dict[str, Any]:
    """The fields of every change to one booking (`UpdateBookingRequest`,
    `CancelBookingRequest`): the booking the path names and the versions If-Match allows."""
    if_match, versions = _if_match(request)
    return {
        "business_id": _business(request),
        "booking_id": request.match_info["booking_id"],
        "if_match": if_match,
        "if_match_versions": versions,
    }


async def show_booking(request: web.Request) -> web.Response:
    booking = await call(
        request,
        request.app[DOWNSTREAM].bookings.GetBooking,
        booking_pb2.GetBookingRequest(
            business_id=_business(request), booking_id=request.match_info["booking_id"]
        ),
    )
    return _with_etag(booking.json)


async def update_booking(request: web.Request) -> web.Response:
    message = booking_pb2.UpdateBookingRequest(
        patch_json=await request.read(), **_change_target(request)
    )
    booking = await call(request, request.app[DOWNSTREAM].bookings.UpdateBooking, message)
    return _with_etag(booking.json)


async def cancel_booking(request: web.Request) -> web.Response:
    body = await request.read()
    message = booking_pb2.CancelBookingRequest(
        body_json=body if body.strip() else b"{}", **_change_target(request)
    )
    booking = await call(request, request.app[DOWNSTREAM].bookings.CancelBooking, message)
    return _with_etag(booking.json)


_IF_MATCH = {
    "If-Match": (
        'Change nothing unless the booking is still at this ETag (such as `"3"`); otherwise 412',
        False,
    )
}
_PRECONDITION = {412: "If-Match names another version: the booking changed meanwhile"}


async def list_messages(request: web.Request) -> web.Response:
    """The booking must be this business's (404 otherwise); notify-service keeps the
    messages."""
    business_id, booking_id = _business(request), request.match_info["booking_id"]
    await call(
        request,
        request.app[DOWNSTREAM].bookings.GetBooking,
        booking_pb2.GetBookingRequest(business_id=business_id, booking_id=booking_id),
    )
    page = await call(
        request,
        request.app[DOWNSTREAM].notify.ListMessages,
        notify_pb2.ListMessagesRequest(business_id=business_id, booking_id=booking_id),
    )
    return page_response(list(page.items_json), "")


async def list_bookings(request: web.Request) -> web.Response:
    query = booking_pb2.ListBookingsRequest(
        business_id=_business(request),
        # Checked already; booking-service reads the same names.
        filters_json=orjson.dumps(query_document(request, LIST_BOOKINGS)),
    )
    return await relay_page(request, request.app[DOWNSTREAM].bookings.ListBookings, query)


LIST_BOOKINGS = Operation(
    "GET",
    "/api/v1/bookings",
    name="list_bookings",
    summary="List bookings",
    tag=TAG,
    key_kinds=MANAGING_KINDS,
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
            name="create_booking",
            summary="Create a booking",
            tag=TAG,
            key_kinds=ALL_KINDS,
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
                404: "The hold has expired, was used, or belongs to another business or "
                "(for a session token) another session",
                409: "The slot was taken meanwhile",
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
            name="get_booking",
            summary="Show a booking",
            tag=TAG,
            key_kinds=ALL_KINDS,
            description="Available to all key types. Returns the booking with relationships. "
            "The `ETag` header is its `version`, for `If-Match` on PATCH and DELETE.",
            replies=(
                Reply(
                    200,
                    Booking,
                    "The booking",
                    examples={"A booking": BOOKING_EXAMPLE},
                    headers=("ETag",),
                ),
            ),
        ),
        show_booking,
    ),
    route(
        Operation(
            "PATCH",
            "/api/v1/bookings/{booking_id}",
            name="update_booking",
            summary="Update a booking",
            tag=TAG,
            key_kinds=MANAGING_KINDS,
            description="Requires a business or hub API key — not available to session "
            "tokens. Reschedule (`starts_at`, and `ends_at` to change the length), move the "
            "status along, or edit the notes. An illegal status change is 409 with the reason. "
            '`"status": "no_show"` is for a pending or confirmed booking whose start has '
            'passed; `"status": "cancelled"` may carry a `cancellation_reason`. With '
            "`If-Match`, a booking changed since that ETag answers 412 and nothing changes.",
            body=Body(BookingPatch),
            headers=_IF_MATCH,
            replies=(Reply(200, Booking, "The updated booking", headers=("ETag",)),),
            errors={409: "An illegal status change, or the new time is taken"} | _PRECONDITION,
        ),
        update_booking,
    ),
    route(
        Operation(
            "DELETE",
            "/api/v1/bookings/{booking_id}",
            name="cancel_booking",
            summary="Cancel a booking",
            tag=TAG,
            key_kinds=MANAGING_KINDS,
            description="Requires a business or hub API key. Sets status to cancelled and "
            "records cancelled_at; frees the slot. Triggers the booking.cancelled webhook "
            "event. Idempotent: cancelling a cancelled booking answers it unchanged. An "
            "optional JSON body gives a `cancellation_reason`. With `If-Match`, a booking "
            "changed since that ETag answers 412 and nothing changes.",
            body=Body(Cancellation, required=False),
            headers=_IF_MATCH,
            replies=(Reply(200, Booking, "The cancelled booking", headers=("ETag",)),),
            errors={409: "A completed booking cannot be cancelled"} | _PRECONDITION,
        ),
        cancel_booking,
    ),
    route(LIST_BOOKINGS, list_bookings),
    route(
        Operation(
            "GET",
            "/api/v1/bookings/{booking_id}/messages",
            name="list_booking_messages",
            summary="List a booking's client emails",
            tag="Client emails",
            key_kinds=MANAGING_KINDS,
            description="Every email sent (or being sent) to the booking's client, oldest "
            "first: confirmation, cancellation, reschedule and reminder mails, each with "
            "its status and send attempts. Which kinds are sent is the business's "
            "`client_emails`; with no SMTP server configured none are.",
            replies=(Reply(200, ClientMessageList, "The booking's messages (one page)"),),
        ),
        list_messages,
    ),
]
