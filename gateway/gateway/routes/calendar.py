"""Calendar files: a booking as iCalendar, and a staff member's secret feed."""

from __future__ import annotations

from aiohttp import web
from calendence.manage.v1 import manage_pb2
from calendence.schemas.manage import CalendarFeed

from gateway.appkeys import DOWNSTREAM
from gateway.auth import ALL_KINDS, MANAGING_KINDS, principal_of
from gateway.contract import Operation, Reply, route
from gateway.http_io import call, raw_json_response
from gateway.routes.manage import relay_calendar, token_limited

TAG = "Calendars"


async def booking_calendar(request: web.Request) -> web.Response:
    booking_id = request.match_info["booking_id"]
    return await relay_calendar(
        request,
        request.app[DOWNSTREAM].calendars.GetBookingCalendar,
        manage_pb2.BookingCalendarRequest(
            business_id=principal_of(request).business_id, booking_id=booking_id
        ),
        f"booking-{booking_id}.ics",
    )


async def issue_staff_feed(request: web.Request) -> web.Response:
    feed = await call(
        request,
        request.app[DOWNSTREAM].calendars.IssueStaffCalendarFeed,
        manage_pb2.IssueStaffCalendarFeedRequest(
            business_id=principal_of(request).business_id,
            staff_id=request.match_info["staff_id"],
        ),
    )
    return raw_json_response(feed.json, status=201)


@token_limited
async def staff_feed(request: web.Request) -> web.Response:
    return await relay_calendar(
        request,
        request.app[DOWNSTREAM].calendars.GetStaffCalendarFeed,
        manage_pb2.StaffCalendarFeedRequest(feed_token=request.match_info["feed_token"]),
        "appointments.ics",
    )


routes = [
    route(
        Operation(
            "GET",
            "/api/v1/bookings/{booking_id}.ics",
            name="get_booking_calendar_file",
            summary="A booking as a calendar file",
            tag=TAG,
            key_kinds=ALL_KINDS,
            description="An RFC 5545 VCALENDAR (`text/calendar`) with one VEVENT: UID "
            "`<booking id>@calendence.com` (the same for every version of the booking, so "
            "calendar apps update it in place), SEQUENCE (grows with each change), STATUS "
            "(TENTATIVE while a deposit is due, CONFIRMED, CANCELLED), DTSTART/DTEND in the "
            "location's time zone with its VTIMEZONE, LOCATION (name and address), and the "
            "client's manage link as URL.",
            replies=(Reply(200, None, "The calendar file", media_type="text/calendar"),),
        ),
        booking_calendar,
    ),
    route(
        Operation(
            "POST",
            "/api/v1/staff/{staff_id}/calendar-feed",
            name="create_staff_calendar_feed",
            summary="Make or rotate a staff member's calendar feed",
            tag=TAG,
            key_kinds=MANAGING_KINDS,
            description="A secret URL (`GET /calendar/{feed_token}.ics`) a calendar app "
            "subscribes to: the staff member's bookings from 30 days back to the booking "
            "horizon, cancelled ones as STATUS:CANCELLED. The URL is shown this once; "
            "calling again makes a new one and the old one stops working.",
            replies=(Reply(201, CalendarFeed, "The feed, with its secret URL"),),
            conflicts=False,
            errors={404: "No such staff member in this business"},
        ),
        issue_staff_feed,
    ),
    route(
        Operation(
            "GET",
            "/calendar/{feed_token}.ics",
            name="get_staff_calendar_feed",
            summary="A staff member's calendar feed",
            tag=TAG,
            key_kinds=(),
            description="The feed's secret in the URL is the only proof (no key). An RFC "
            "5545 VCALENDAR (`text/calendar`), one VEVENT per booking as in `GET "
            "/api/v1/bookings/{booking_id}.ics`, with the client's name and contact.",
            replies=(Reply(200, None, "The calendar", media_type="text/calendar"),),
            errors={
                404: "No such feed (or it was replaced)",
                429: "This feed's requests are over its rate limit",
                503: "A service behind the API is unavailable; retry",
            },
        ),
        staff_feed,
    ),
]
