"""A client managing their own booking through its manage link: JSON for widgets, and a
small server-rendered page at /manage/{token}.

The token in the path is the only proof (booking-service checks it); it opens one
booking and nothing else, and every token has a rate-limit bucket of its own (the
session tokens' size). A business's own widget (an origin in its `allowed_origins`)
may read the JSON answers from the browser. The page works without JavaScript for
viewing and cancelling; a few lines of script fill the reschedule picker from the
availability route.
"""

from __future__ import annotations

import hashlib
import html
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from calendence import rpc
from calendence.errors import DomainError
from calendence.manage.v1 import manage_pb2
from calendence.principals import KeyKind, Principal
from calendence.schemas.holds import Availability
from calendence.schemas.manage import (
    ManageAvailabilityQuery,
    ManageCancelRequest,
    ManagedBooking,
    ManageRescheduleRequest,
)
from calendence.timefmt import to_timestamp, utcnow

from gateway.appkeys import DOWNSTREAM
from gateway.contract import Body, Operation, Reply, route, validated_body, validated_query
from gateway.cors import EXPOSED_HEADERS
from gateway.http_io import call, json_response, raw_json_response
from gateway.middleware import Handler, _rate_limited
from gateway.problems import status_of
from gateway.routes.holds import free_times

TAG = "Client self-service"
# How far ahead the picker looks when the caller names no range.
DEFAULT_RANGE = timedelta(days=14)
_PAGE = Template(
    (Path(__file__).resolve().parent.parent / "templates" / "manage.html").read_text(
        encoding="utf-8"
    )
)


def token_limited(handler: Handler) -> Handler:
    """Charge each request to the token's own bucket (a manage link's, or a calendar
    feed's); 429 when it is empty."""

    async def limited(request: web.Request) -> web.StreamResponse:
        token = request.match_info.get("token") or request.match_info["feed_token"]
        bucket = "manage:" + hashlib.sha256(token.encode()).hexdigest()[:32]
        holder = Principal(bucket, KeyKind.SESSION, "", "", None)
        refused = await _rate_limited(request, holder)
        if refused is not None:
            return refused
        return await handler(request)

    limited.__name__ = handler.__name__
    return limited


async def _managed(request: web.Request) -> manage_pb2.ManagedBooking:
    return await call(
        request,
        request.app[DOWNSTREAM].manage.GetManagedBooking,
        manage_pb2.ManageTokenRequest(token=request.match_info["token"]),
    )


async def _cancel(request: web.Request, reason: str | None) -> manage_pb2.ManagedBooking:
    return await call(
        request,
        request.app[DOWNSTREAM].manage.CancelManagedBooking,
        manage_pb2.CancelManagedBookingRequest(
            token=request.match_info["token"],
            body_json=orjson.dumps({"cancellation_reason": reason}),
        ),
    )


async def _reschedule(request: web.Request, starts_at: datetime) -> manage_pb2.ManagedBooking:
    return await call(
        request,
        request.app[DOWNSTREAM].manage.RescheduleManagedBooking,
        manage_pb2.RescheduleManagedBookingRequest(
            token=request.match_info["token"], starts_at=to_timestamp(starts_at)
        ),
    )


# --- JSON -----------------------------------------------------------------------------


def for_widget(
    request: web.Request, response: web.Response, booking: manage_pb2.ManagedBooking
) -> web.Response:
    """Let the business's own widget (an origin it lists in `allowed_origins`) read it."""
    origin = request.headers.get("Origin")
    if origin and origin in booking.allowed_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.headers.add("Vary", "Origin")
    return response


@token_limited
async def show_managed(request: web.Request) -> web.Response:
    booking = await _managed(request)
    return for_widget(request, raw_json_response(booking.json), booking)


@token_limited
async def cancel_managed(request: web.Request) -> web.Response:
    wanted = validated_body(request, ManageCancelRequest)
    booking = await _cancel(request, wanted.cancellation_reason)
    return for_widget(request, raw_json_response(booking.json), booking)


@token_limited
async def reschedule_managed(request: web.Request) -> web.Response:
    wanted = validated_body(request, ManageRescheduleRequest)
    booking = await _reschedule(request, wanted.starts_at)
    return for_widget(request, raw_json_response(booking.json), booking)


@token_limited
async def managed_availability(request: web.Request) -> web.Response:
    query = validated_query(request, ManageAvailabilityQuery)
    booking = await _managed(request)
    start = query.from_ or utcnow()
    answer = json_response(
        await free_times(
            request,
            business_id=booking.business_id,
            service_id=booking.service_id,
            location_id=booking.location_id,
            staff_id=booking.staff_id,
            start=start,
            end=query.to or start + DEFAULT_RANGE,
        )
    )
    return for_widget(request, answer, booking)


@token_limited
async def managed_calendar(request: web.Request) -> web.Response:
    return await relay_calendar(
        request,
        request.app[DOWNSTREAM].manage.GetManagedBookingCalendar,
        manage_pb2.ManageTokenRequest(token=request.match_info["token"]),
        "booking.ics",
    )


async def relay_calendar(
    request: web.Request,
    method: rpc.UnaryMethod[Any, manage_pb2.CalendarFile],
    message: Any,
    filename: str,
) -> web.Response:
    """Calls `method` and answers the calendar file it returns, named `filename`."""
    answer = await call(request, method, message)
    return web.Response(
        body=answer.ics,
        content_type="text/calendar",
        charset="utf-8",
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


# --- the page ---------------------------------------------------------------------------


def _when(document: dict[str, Any]) -> str:
    """The appointment's date and time in the location's time zone, in words."""
    zone = ZoneInfo(document["location"]["timezone"])
    starts = datetime.fromisoformat(document["starts_at"]).astimezone(zone)
    ends = datetime.fromisoformat(document["ends_at"]).astimezone(zone)
    return (
        f"{starts:%A} {starts.day} {starts:%B %Y}, {starts:%H:%M} to {ends:%H:%M} "
        f"({starts.tzname()}, {zone.key.replace('_', ' ')} time)"
    )


def _moment(document: dict[str, Any], field: str) -> str:
    zone = ZoneInfo(document["location"]["timezone"])
    moment = datetime.fromisoformat(document[field]).astimezone(zone)
    return f"{moment:%A} {moment.day} {moment:%B %Y}, {moment:%H:%M}"


def _details(document: dict[str, Any]) -> str:
    e = html.escape
    location = document["location"]
    rows = [
        ("What", e(document["service"]["name"])),
        ("When", f'<span id="when">{e(_when(document))}</span>'),
        ("Where", e(", ".join(p for p in (location["name"], location["address"]) if p))),
    ]
    if document["staff"]:
        rows.append(("With", e(document["staff"]["name"])))
    client = document["client"]
    rows.append(("Booked for", e(f"{client['first_name']} {client['last_name']}")))
    rows.append(("Status", f'<span id="status">{e(document["status"].replace("_", " "))}</span>'))
    return "\n".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)


def _actions(document: dict[str, Any], token: str) -> str:
    e = html.escape
    base = f"/manage/{e(token)}"
    parts = [
        f'<p><a href="{base}/booking.ics">Add to my calendar</a> (an .ics file)</p>',
    ]
    if document["redirect_url"]:
        parts.insert(
            0,
            f'<p><a href="{e(document["redirect_url"])}">Pay the deposit</a> to confirm '
            "this booking.</p>",
        )
    if document["can_reschedule"]:
        parts.append(f"""
<section aria-labelledby="move-heading">
  <h2 id="move-heading">Move it to another time</h2>
  <form method="post" action="{base}/reschedule" id="move-form">
    <label for="new-time">New time ({e(document["location"]["timezone"])} time)</label>
    <select id="new-time" name="starts_at" required disabled>
      <option value="">Loading the free times…</option>
    </select>
    <p id="picker-status" role="status" aria-live="polite"></p>
    <noscript><p>Choosing a new time needs JavaScript; you can still cancel below.</p></noscript>
    <button type="submit" id="move-button" disabled>Move my appointment</button>
  </form>
</section>""")
    else:
        parts.append(
            "<p>This booking can no longer be moved online; please contact the business.</p>"
        )
    if document["can_cancel"]:
        parts.append(f"""
<section aria-labelledby="cancel-heading">
  <h2 id="cancel-heading">Cancel it</h2>
  <form method="post" action="{base}/cancel" id="cancel-form">
    <label for="reason">Reason (optional, shown to the business)</label>
    <textarea id="reason" name="cancellation_reason" rows="3" maxlength="1000"></textarea>
    <p class="confirm">
      <input type="checkbox" id="confirm" name="confirm" value="yes" required>
      <label for="confirm">Yes, cancel this appointment</label>
    </p>
    <button type="submit" id="cancel-button" class="danger">Cancel appointment</button>
  </form>
</section>""")
    else:
        parts.append(
            "<p>This booking can no longer be cancelled online; please contact the business.</p>"
        )
    return "\n".join(parts)


def _page(*, title: str, body: str, notice: str = "", status: int = 200) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    page = _PAGE.substitute(
        title=html.escape(title),
        notice=f'<p class="notice" role="status">{html.escape(notice)}</p>' if notice else "",
        body=body,
        nonce=nonce,
    )
    return web.Response(
        text=page,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={
            # The token is in the URL: never send it on as a Referer, never cache the page.
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Robots-Tag": "noindex",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": (
                f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                "base-uri 'none'"
            ),
        },
    )


def _booking_page(
    request: web.Request, document: dict[str, Any], notice: str = "", status: int = 200
) -> web.Response:
    token = request.match_info["token"]
    e = html.escape
    body = f"""
<h1>Your appointment</h1>
<dl>{_details(document)}</dl>
<div id="manage" data-token="{e(token)}" data-timezone="{e(document["location"]["timezone"])}">
{_actions(document, token)}
</div>"""
    return _page(title="Your appointment", body=body, notice=notice, status=status)


def _error_page(error: DomainError) -> web.Response:
    status, _ = status_of(error)
    if status == 404:
        body = (
            "<h1>This link no longer works</h1><p>The booking may have been cancelled, or "
            "its appointment is over. If you think this is wrong, contact the business.</p>"
        )
    else:
        body = f"<h1>Sorry</h1><p>{html.escape(error.detail)}</p>"
    return _page(title="Your appointment", body=body, status=status)


async def _form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@token_limited
async def manage_page(request: web.Request) -> web.Response:
    try:
        document = orjson.loads((await _managed(request)).json)
    except DomainError as error:
        return _error_page(error)
    notice = ""
    if request.query.get("moved") == "1":
        notice = f"Done: your appointment is now on {_moment(document, 'starts_at')}."
    return _booking_page(request, document, notice)


PageForm = Callable[[web.Request, dict[str, str], dict[str, Any]], Awaitable[web.Response]]


def _page_form(answer: PageForm) -> Handler:
    """The handler of a form posted from the booking's page: `answer` gets the form and
    the booking as it is now; a link that no longer works gets the error page."""

    @token_limited
    async def handler(request: web.Request) -> web.Response:
        form = await _form(request)
        try:
            current = orjson.loads((await _managed(request)).json)
        except DomainError as error:
            return _error_page(error)
        return await answer(request, form, current)

    return handler


@_page_form
async def manage_page_cancel(
    request: web.Request, form: dict[str, str], current: dict[str, Any]
) -> web.Response:
    if form.get("confirm") != "yes":
        return _booking_page(
            request,
            current,
            "Tick “Yes, cancel this appointment” to cancel it.",
            status=422,
        )
    reason = form.get("cancellation_reason", "").strip() or None
    try:
        document = orjson.loads((await _cancel(request, reason)).json)
    except DomainError as error:
        return _booking_page(request, current, error.detail, status=status_of(error)[0])
    body = f"""
<h1>Your appointment is cancelled</h1>
<p id="cancelled">{html.escape(document["service"]["name"])} on
{html.escape(_moment(document, "starts_at"))} is cancelled. The business has been told.</p>"""
    return _page(title="Appointment cancelled", body=body)


@_page_form
async def manage_page_reschedule(
    request: web.Request, form: dict[str, str], current: dict[str, Any]
) -> web.Response:
    try:
        wanted = ManageRescheduleRequest.model_validate_json(
            orjson.dumps({"starts_at": form.get("starts_at", "")})
        )
        await _reschedule(request, wanted.starts_at)
    except DomainError as error:
        return _booking_page(request, current, error.detail, status=status_of(error)[0])
    except ValueError:
        return _booking_page(request, current, "Pick one of the listed times.", status=422)
    raise web.HTTPSeeOther(f"/manage/{request.match_info['token']}?moved=1")


_TOKEN = "{token:[^/]+}"
page_routes = [
    web.get(f"/manage/{_TOKEN}", manage_page, allow_head=False),
    web.post(f"/manage/{_TOKEN}/cancel", manage_page_cancel),
    web.post(f"/manage/{_TOKEN}/reschedule", manage_page_reschedule),
]

_LINK = "The token from the booking's `manage_url`"
_DEAD = "A wrong token, or the booking is cancelled, completed or over"
_LIMITED = "This link's requests are over its rate limit; retry after `Retry-After` seconds"
_DOWN = "A service behind the API is unavailable; retry"
routes = [
    route(
        Operation(
            "GET",
            "/api/v1/manage/{token}",
            name="get_managed_booking",
            summary="Show a booking to its client",
            tag=TAG,
            key_kinds=(),
            description=f"{_LINK} is the only proof; no key. The booking as its client may "
            "see it (no notes, custom fields or staff contacts), with what they may still do "
            "(`can_cancel`, `can_reschedule`) under the business's client cutoffs. "
            "The page at `/manage/{token}` (`manage_url`) shows the same in a browser.",
            replies=(Reply(200, ManagedBooking, "The booking"),),
            errors={404: _DEAD, 429: _LIMITED, 503: _DOWN},
        ),
        show_managed,
    ),
    route(
        Operation(
            "POST",
            "/api/v1/manage/{token}/cancel",
            name="cancel_managed_booking",
            summary="Cancel a booking as its client",
            tag=TAG,
            key_kinds=(),
            description="Cancels the booking and frees the slot, as `DELETE "
            "/api/v1/bookings/{booking_id}` does, with `cancelled_by: client` and the "
            "optional reason; a `booking.cancelled` event follows. The link stops working.",
            body=Body(ManageCancelRequest, required=False),
            replies=(Reply(200, ManagedBooking, "The cancelled booking"),),
            errors={
                404: _DEAD,
                409: "Too late under the business's `client_cancel_cutoff_minutes` rule "
                "(the problem names it)",
                429: _LIMITED,
                503: _DOWN,
            },
        ),
        cancel_managed,
    ),
    route(
        Operation(
            "GET",
            "/api/v1/manage/{token}/availability",
            name="list_managed_booking_times",
            summary="Times a client may move their booking to",
            tag=TAG,
            key_kinds=(),
            description="The booking's service, location and staff member's free start "
            "times, by the same rules as `GET /api/v1/availability` (default: the next 14 "
            "days; at most 31 days per call).",
            query=ManageAvailabilityQuery,
            replies=(Reply(200, Availability, "The free start times"),),
            errors={404: _DEAD, 422: "An invalid range", 429: _LIMITED, 503: _DOWN},
        ),
        managed_availability,
    ),
    route(
        Operation(
            "POST",
            "/api/v1/manage/{token}/reschedule",
            name="reschedule_managed_booking",
            summary="Move a booking as its client",
            tag=TAG,
            key_kinds=(),
            description="The new time is claimed and the booking moved in one step: if the "
            "time is taken the answer is 409 and the booking keeps its slot; there is no "
            "moment when both or neither slot is held. A `booking.rescheduled` event "
            "follows with `actor: client`.",
            body=Body(ManageRescheduleRequest),
            replies=(Reply(200, ManagedBooking, "The moved booking"),),
            errors={
                404: _DEAD,
                409: "The new time is taken, or too late under the business's "
                "`client_reschedule_cutoff_minutes` rule (the problem names it)",
                422: "The new time is not bookable (past, outside opening hours)",
                429: _LIMITED,
                503: _DOWN,
            },
        ),
        reschedule_managed,
    ),
    route(
        Operation(
            "GET",
            "/manage/{token}/booking.ics",
            name="get_managed_booking_calendar_file",
            summary="The booking as a calendar file, for its client",
            tag=TAG,
            key_kinds=(),
            description="An RFC 5545 VCALENDAR with one VEVENT (see `GET "
            "/api/v1/bookings/{booking_id}.ics`).",
            replies=(Reply(200, None, "The calendar file", media_type="text/calendar"),),
            errors={404: _DEAD, 429: _LIMITED, 503: _DOWN},
        ),
        managed_calendar,
    ),
]
