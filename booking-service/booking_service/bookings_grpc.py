"""gRPC servicer for bookings: protobuf in, Bookings call, booking document out."""

from __future__ import annotations

from dataclasses import dataclass

from calendence import jsonfmt
from calendence.booking.v1 import booking_pb2, booking_pb2_grpc
from calendence.ids import booking_ids, parse_uuid
from calendence.pages import filtered_page_message
from calendence.rpc import ServicerContext
from calendence.schemas.bookings import BookingPatch, Cancellation
from calendence.schemas.common import parse_json

from booking_service.bookings import Bookings


def _document(booking: dict[str, object]) -> booking_pb2.BookingDocument:
    return booking_pb2.BookingDocument(json=jsonfmt.dumps(booking))


def _if_match(
    request: booking_pb2.UpdateBookingRequest | booking_pb2.CancelBookingRequest,
) -> frozenset[int] | None:
    return frozenset(request.if_match_versions) if request.if_match else None


@dataclass
class BookingServicer(booking_pb2_grpc.BookingServiceServicer):
    bookings: Bookings

    async def CreateBooking(
        self, request: booking_pb2.CreateBookingRequest, context: ServicerContext
    ) -> booking_pb2.BookingDocument:
        booking, replayed = await self.bookings.create(
            parse_uuid(request.business_id, "business_id"),
            request.body_json,
            holder_id=request.holder_id,
            idempotency_key=request.idempotency_key,
        )
        return booking_pb2.BookingDocument(json=jsonfmt.dumps(booking), replayed=replayed)

    async def GetBooking(
        self, request: booking_pb2.GetBookingRequest, context: ServicerContext
    ) -> booking_pb2.BookingDocument:
        booking = await self.bookings.get(*booking_ids(request))
        return _document(booking)

    async def UpdateBooking(
        self, request: booking_pb2.UpdateBookingRequest, context: ServicerContext
    ) -> booking_pb2.BookingDocument:
        booking = await self.bookings.update(
            *booking_ids(request),
            parse_json(BookingPatch, request.patch_json or b"{}"),
            _if_match(request),
        )
        return _document(booking)

    async def CancelBooking(
        self, request: booking_pb2.CancelBookingRequest, context: ServicerContext
    ) -> booking_pb2.BookingDocument:
        cancellation = parse_json(Cancellation, request.body_json or b"{}")
        booking = await self.bookings.cancel(
            *booking_ids(request),
            cancellation.cancellation_reason,
            _if_match(request),
        )
        return _document(booking)

    async def ListBookings(
        self, request: booking_pb2.ListBookingsRequest, context: ServicerContext
    ) -> booking_pb2.BookingPage:
        return await filtered_page_message(
            booking_pb2.BookingPage, self.bookings.list_page, request
        )

    async def HandleCheckoutEvent(
        self, request: booking_pb2.CheckoutEvent, context: ServicerContext
    ) -> booking_pb2.CheckoutEventResult:
        applied = await self.bookings.settle_checkout(
            request.event_id,
            request.type,
            request.session_id,
            paid=request.payment_status == "paid",
        )
        return booking_pb2.CheckoutEventResult(applied=applied)
