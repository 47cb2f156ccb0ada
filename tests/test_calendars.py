"""Calendar files: a booking's .ics (for the business and for its client) and a staff
member's secret feed, parsed with icalendar and checked against the bookings."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import icalendar
from calendence.devstack.stack import LocalStack

from tests.api import Answer, Api, created, iso, tomorrow_at
from tests.booking_helpers import Salon
from tests.manage_helpers import managed, token_of
from tests.test_booking_outcomes import started_booking


def parse(answer: Answer) -> icalendar.Calendar:
    assert answer.status == 200, answer.body
    assert answer.content_type == "text/calendar"
    return icalendar.Calendar.from_ical(answer.body)


def events(calendar: icalendar.Calendar) -> dict[str, Any]:
    return {str(e["uid"]): e for e in calendar.walk("VEVENT")}


def starts(event: Any) -> datetime:
    moment: datetime = event.decoded("dtstart")
    return moment


async def test_a_bookings_calendar_file_matches_the_booking(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    tenant = salon.tenant
    calendar = parse(
        await tenant.api.get(f"/api/v1/bookings/{booking['id']}.ics", tenant.business_key)
    )
    (event,) = calendar.walk("VEVENT")
    assert str(event["uid"]) == f"{booking['id']}@calendence.com"
    assert str(event["status"]) == "CONFIRMED"
    assert starts(event) == datetime.fromisoformat(booking["starts_at"])
    assert event.decoded("dtend") == datetime.fromisoformat(booking["ends_at"])
    assert event["dtstart"].params["TZID"] == "Europe/London"
    assert [str(tz["tzid"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/London"]
    assert booking["location"]["name"] in str(event["location"])
    assert str(event["url"]) == booking["manage_url"]


async def test_the_file_keeps_its_uid_and_raises_sequence_when_the_booking_moves(
    salon: Salon,
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    tenant = salon.tenant
    path = f"/api/v1/bookings/{booking['id']}.ics"
    (before,) = parse(await tenant.api.get(path, tenant.business_key)).walk("VEVENT")
    await _wait_a_second()
    moved = await tenant.api.patch(
        f"/api/v1/bookings/{booking['id']}",
        tenant.business_key,
        {"starts_at": iso(tomorrow_at(14))},
    )
    assert moved.status == 200
    (after,) = parse(await tenant.api.get(path, tenant.business_key)).walk("VEVENT")
    assert after["uid"] == before["uid"]
    assert after.decoded("sequence") > before.decoded("sequence")
    assert starts(after) == tomorrow_at(14)


async def test_a_no_show_stays_in_the_calendar_as_it_was(salon: Salon, stack: LocalStack) -> None:
    booking_id = await started_booking(stack, salon)
    tenant = salon.tenant
    marked = await tenant.api.patch(
        f"/api/v1/bookings/{booking_id}", tenant.business_key, {"status": "no_show"}
    )
    assert marked.status == 200, marked.body
    calendar = parse(
        await tenant.api.get(f"/api/v1/bookings/{booking_id}.ics", tenant.business_key)
    )
    (event,) = calendar.walk("VEVENT")
    assert str(event["status"]) == "CONFIRMED"
    assert event["sequence"] == marked.body["version"]


async def test_a_session_token_gets_its_business_file_but_not_anothers(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(11))
    token = await salon.tenant.session_token()
    assert (
        await salon.tenant.api.get(f"/api/v1/bookings/{booking['id']}.ics", token)
    ).status == 200
    missing = await salon.tenant.api.get(
        "/api/v1/bookings/6f0c4d8e-0000-4000-8000-000000000000.ics", token
    )
    assert missing.status == 404


async def test_the_client_gets_the_same_event_through_the_manage_link(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(12))
    calendar = parse(await salon.tenant.api.get(f"/manage/{token_of(booking)}/booking.ics"))
    (event,) = calendar.walk("VEVENT")
    assert str(event["uid"]) == f"{booking['id']}@calendence.com"
    assert starts(event) == datetime.fromisoformat(booking["starts_at"])
    # Cancelled: the link, its calendar file included, stops working.
    await managed(salon.tenant.api, booking, "cancel", json={})
    gone = await salon.tenant.api.get(f"/manage/{token_of(booking)}/booking.ics")
    assert gone.status == 404


async def feed_of(salon: Salon, staff_id: str) -> str:
    made = created(
        await salon.tenant.api.post(
            f"/api/v1/staff/{staff_id}/calendar-feed", salon.tenant.business_key
        )
    )
    assert made["staff_id"] == staff_id
    return str(urlsplit(made["url"]).path)


async def test_a_staff_feed_lists_their_bookings_moved_and_cancelled(salon: Salon) -> None:
    tenant = salon.tenant
    member = await tenant.staff([salon.service_id], [salon.location_id])
    other = await tenant.staff([salon.service_id], [salon.location_id])
    token = await tenant.session_token()

    async def book_with(staff_id: str, hour: int) -> dict[str, Any]:
        hold = created(
            await tenant.api.post(
                "/api/v1/bookings/hold",
                token,
                {
                    "service_id": salon.service_id,
                    "location_id": salon.location_id,
                    "staff_id": staff_id,
                    "starts_at": iso(tomorrow_at(hour)),
                },
            )
        )
        booking: dict[str, Any] = created(await salon.book(token, hold["hold_id"]))
        return booking

    kept = await book_with(member["id"], 10)
    moved = await book_with(member["id"], 11)
    cancelled = await book_with(member["id"], 12)
    not_theirs = await book_with(other["id"], 10)
    await managed(tenant.api, moved, "reschedule", json={"starts_at": iso(tomorrow_at(15))})
    await managed(tenant.api, cancelled, "cancel", json={})

    path = await feed_of(salon, member["id"])
    assert path.startswith("/calendar/") and path.endswith(".ics")
    feed = parse(await tenant.api.get(path))
    # Calendar apps that subscribe fetch it again every 15 minutes.
    assert feed.decoded("refresh-interval") == timedelta(minutes=15)
    listed = events(feed)
    uid = "{}@calendence.com".format
    assert set(listed) == {uid(kept["id"]), uid(moved["id"]), uid(cancelled["id"])}
    assert uid(not_theirs["id"]) not in listed
    assert str(listed[uid(kept["id"])]["status"]) == "CONFIRMED"
    assert starts(listed[uid(moved["id"])]) == tomorrow_at(15)
    assert str(listed[uid(cancelled["id"])]["status"]) == "CANCELLED"
    assert "Jane Doe" in str(listed[uid(kept["id"])]["summary"])


async def test_making_the_feed_again_retires_the_old_url(salon: Salon) -> None:
    member = await salon.tenant.staff([salon.service_id], [salon.location_id])
    old = await feed_of(salon, member["id"])
    new = await feed_of(salon, member["id"])
    assert old != new
    assert (await salon.tenant.api.get(old)).status == 404
    assert (await salon.tenant.api.get(new)).status == 200


async def test_only_the_business_may_make_a_feed_and_only_for_its_staff(
    salon: Salon, api: Api
) -> None:
    member = await salon.tenant.staff([salon.service_id], [salon.location_id])
    session = await salon.tenant.session_token()
    path = f"/api/v1/staff/{member['id']}/calendar-feed"
    assert (await api.post(path, session)).status == 403
    unknown = "/api/v1/staff/6f0c4d8e-0000-4000-8000-000000000000/calendar-feed"
    assert (await api.post(unknown, salon.tenant.business_key)).status == 404
    assert (await api.get("/calendar/cal_feed_made-up.ics")).status == 404


async def _wait_a_second() -> None:
    # SEQUENCE counts whole seconds of change where bookings keep no version.
    await asyncio.sleep(1.1)


async def test_a_staff_feed_reaches_30_days_back_and_up_to_the_horizon(
    salon: Salon, stack: LocalStack
) -> None:
    tenant = salon.tenant
    member = await tenant.staff([salon.service_id], [salon.location_id])
    token = await tenant.session_token()
    made = []
    for hour in (10, 11, 12):
        hold = created(await salon.hold(token, tomorrow_at(hour), staff_id=member["id"]))
        made.append(created(await salon.book(token, hold["hold_id"])))
    # Time passes for two of them (as if booked long ago), one lies past the horizon.
    connection = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        for booking, days in zip(made, (-20, -40, 400), strict=True):
            await connection.execute(
                "UPDATE bookings SET starts_at = starts_at + make_interval(days => $2), "
                "ends_at = ends_at + make_interval(days => $2), "
                "blocked_until = blocked_until + make_interval(days => $2) WHERE id = $1",
                uuid.UUID(booking["id"]),
                days,
            )
    finally:
        await connection.close()
    listed = events(parse(await tenant.api.get(await feed_of(salon, member["id"]))))
    assert set(listed) == {f"{made[0]['id']}@calendence.com"}
