"""gRPC servicers for manage links and calendars: protobuf in, domain call, answer out."""

from __future__ import annotations

from dataclasses import dataclass

from calendence import jsonfmt
from calendence.ids import booking_ids, parse_uuid
from calendence.manage.v1 import manage_pb2, manage_pb2_grpc
from calendence.rpc import ServicerContext
from calendence.timefmt import from_timestamp

from booking_service.calendars import Calendars
from booking_service.manage import Managed, SelfService


def _managed(managed: Managed) -> manage_pb2.ManagedBooking:
    row = managed.row
    return manage_pb2.ManagedBooking(
        json=jsonfmt.dumps(managed.view),
        business_id=str(row["business_id"]),
        service_id=str(row["service_id"]),
        location_id=str(row["location_id"]),
        staff_id=str(row["staff_id"] or ""),
        allowed_origins=row["allowed_origins"],
    )


@dataclass
class ManageServicer(manage_pb2_grpc.ManageServiceServicer):
    self_service: SelfService
    calendars: Calendars

    async def GetManagedBooking(
        self, request: manage_pb2.ManageTokenRequest, context: ServicerContext
    ) -> manage_pb2.ManagedBooking:
        return _managed(await self.self_service.show(request.token))

    async def CancelManagedBooking(
        self, request: manage_pb2.CancelManagedBookingRequest, context: ServicerContext
    ) -> manage_pb2.ManagedBooking:
        return _managed(await self.self_service.cancel(request.token, request.body_json))

    async def RescheduleManagedBooking(
        self, request: manage_pb2.RescheduleManagedBookingRequest, context: ServicerContext
    ) -> manage_pb2.ManagedBooking:
        return _managed(
            await self.self_service.reschedule(request.token, from_timestamp(request.starts_at))
        )

    async def GetManagedBookingCalendar(
        self, request: manage_pb2.ManageTokenRequest, context: ServicerContext
    ) -> manage_pb2.CalendarFile:
        row = await self.self_service.booking(request.token)
        return manage_pb2.CalendarFile(ics=self.calendars.client_file(row))


@dataclass
class CalendarServicer(manage_pb2_grpc.CalendarServiceServicer):
    calendars: Calendars

    async def GetBookingCalendar(
        self, request: manage_pb2.BookingCalendarRequest, context: ServicerContext
    ) -> manage_pb2.CalendarFile:
        ics = await self.calendars.booking_file(*booking_ids(request))
        return manage_pb2.CalendarFile(ics=ics)

    async def IssueStaffCalendarFeed(
        self, request: manage_pb2.IssueStaffCalendarFeedRequest, context: ServicerContext
    ) -> manage_pb2.StaffCalendarFeed:
        feed = await self.calendars.issue_feed(
            parse_uuid(request.business_id, "business_id"),
            parse_uuid(request.staff_id, "staff_id"),
        )
        return manage_pb2.StaffCalendarFeed(json=jsonfmt.dumps(feed))

    async def GetStaffCalendarFeed(
        self, request: manage_pb2.StaffCalendarFeedRequest, context: ServicerContext
    ) -> manage_pb2.CalendarFile:
        return manage_pb2.CalendarFile(ics=await self.calendars.feed(request.feed_token))
