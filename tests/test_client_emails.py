"""Client emails: confirmation, cancellation, reschedule mails through a real SMTP
server (the local one, which keeps each mail as an .eml file), and their records."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import icalendar
from calendence.devstack.processes import free_port, wait_for_port
from calendence.devstack.smtp_local import REFUSED_DOMAIN
from calendence.devstack.stack import LocalStack
from notify_service.mail import compose

from tests.api import AROUND_THE_CLOCK, Api, Tenant, created, iso, new_tenant, tomorrow_at
from tests.booking_helpers import JANE, Salon
from tests.mail_helpers import (
    as_received,
    attachment,
    mails_of,
    open_all_day_salon,
    parts,
    set_messaging,
    wait_for_mails,
)
from tests.webhook_receiver import notify_db, restart_notify_service


async def messages(tenant: Tenant, booking_id: str) -> list[dict[str, Any]]:
    answer = await tenant.api.get(f"/api/v1/bookings/{booking_id}/messages", tenant.business_key)
    assert answer.status == 200, answer.body
    found: list[dict[str, Any]] = answer.body["data"]
    return found


async def wait_for_status(
    tenant: Tenant, booking_id: str, status: str, timeout: float = 20.0
) -> dict[str, Any]:
    for _ in range(int(timeout * 10)):
        found = await messages(tenant, booking_id)
        if found and found[-1]["status"] == status:
            return found[-1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {status} message for {booking_id}: {found}")


async def test_a_confirmed_booking_mails_the_client_text_html_and_the_booking_as_ics(
    stack: LocalStack, tenant: Tenant
) -> None:
    salon = await open_all_day_salon(tenant, timezone="America/New_York")
    booking = await salon.booking(tomorrow_at(15))
    [mail] = await wait_for_mails(stack, booking["id"], "confirmation")
    assert mail["To"].addresses[0].addr_spec == JANE["email"]
    assert "calendence.localhost" in mail["From"]
    assert mail["Subject"].startswith("Booking confirmed: ")
    assert mail["Message-ID"] and mail["Date"]
    bodies = parts(mail)
    # 15:00 UTC tomorrow is 10:00 in New York (EST in winter).
    assert "10:00" in bodies["text/plain"] and "America/New_York" in bodies["text/plain"]
    assert "10:00" in bodies["text/html"] and "<html" in bodies["text/html"]
    calendar = icalendar.Calendar.from_ical(attachment(mail))
    [event] = calendar.walk("VEVENT")
    assert str(event["uid"]).startswith(booking["id"])
    assert event.decoded("dtstart") == datetime.fromisoformat(booking["starts_at"])
    assert event["dtstart"].params["TZID"] == "America/New_York"
    assert event["status"] == "CONFIRMED"


async def test_the_mailed_event_is_the_one_the_calendar_file_serves(
    stack: LocalStack, tenant: Tenant
) -> None:
    salon = await open_all_day_salon(tenant)
    booking = await salon.booking(tomorrow_at(15))
    [mail] = await wait_for_mails(stack, booking["id"], "confirmation")
    [mailed] = icalendar.Calendar.from_ical(attachment(mail)).walk("VEVENT")
    served = await tenant.api.get(f"/api/v1/bookings/{booking['id']}.ics", tenant.business_key)
    [event] = icalendar.Calendar.from_ical(served.body).walk("VEVENT")
    # One appointment in the client's calendar, whichever file it was added from.
    assert mailed["uid"] == event["uid"]
    assert mailed["sequence"] == event["sequence"] == booking["version"]
    assert mailed["dtstart"].params["TZID"] == event["dtstart"].params["TZID"]


async def test_html_mail_escapes_what_the_business_typed(stack: LocalStack, tenant: Tenant) -> None:
    location = await tenant.location(
        name="Cuts <script>alert(1)</script> & Co",
        opening_hours=AROUND_THE_CLOCK,
    )
    service = await tenant.service([location["id"]])
    salon = Salon(tenant, location["id"], service["id"], service["id"])
    booking = await salon.booking(tomorrow_at(10))
    [mail] = await wait_for_mails(stack, booking["id"], "confirmation")
    bodies = parts(mail)
    assert "<script>" not in bodies["text/html"]
    assert "Cuts &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in bodies["text/html"]
    assert "Cuts <script>alert(1)</script> & Co" in bodies["text/plain"]


async def test_cancelling_mails_a_cancellation_whose_ics_is_cancelled(
    stack: LocalStack, tenant: Tenant
) -> None:
    salon = await open_all_day_salon(tenant)
    booking = await salon.booking(tomorrow_at(11))
    answer = await tenant.api.delete(f"/api/v1/bookings/{booking['id']}", tenant.business_key)
    assert answer.status == 200
    [mail] = await wait_for_mails(stack, booking["id"], "cancellation")
    assert mail["Subject"].startswith("Booking cancelled: ")
    assert "cancelled" in parts(mail)["text/plain"]
    [event] = icalendar.Calendar.from_ical(attachment(mail)).walk("VEVENT")
    assert event["status"] == "CANCELLED"


async def test_rescheduling_mails_the_new_time(stack: LocalStack, tenant: Tenant) -> None:
    salon = await open_all_day_salon(tenant)
    booking = await salon.booking(tomorrow_at(11))
    moved_to = tomorrow_at(13, 30)
    answer = await tenant.api.patch(
        f"/api/v1/bookings/{booking['id']}", tenant.business_key, {"starts_at": iso(moved_to)}
    )
    assert answer.status == 200, answer.body
    [mail] = await wait_for_mails(stack, booking["id"], "reschedule")
    # London is on UTC in winter: the new time reads 13:30.
    assert "13:30" in parts(mail)["text/plain"]
    [event] = icalendar.Calendar.from_ical(attachment(mail)).walk("VEVENT")
    assert event.decoded("dtstart") == moved_to


async def test_messages_list_what_was_sent_and_its_state(stack: LocalStack, tenant: Tenant) -> None:
    salon = await open_all_day_salon(tenant)
    booking = await salon.booking(tomorrow_at(12))
    sent = await wait_for_status(tenant, booking["id"], "sent")
    assert sent["kind"] == "confirmation"
    assert sent["to"] == JANE["email"]
    assert sent["channel"] == "email"
    assert sent["sent_at"] is not None
    assert [a["error"] for a in sent["attempts"]] == [None]


async def test_messages_of_another_business_booking_are_404(
    api: Api, tenant: Tenant, salon: Salon, hub: dict[str, str]
) -> None:
    other = await new_tenant(api, hub["key"])
    other_salon = await open_all_day_salon(other)
    booking = await other_salon.booking(tomorrow_at(12))
    answer = await api.get(f"/api/v1/bookings/{booking['id']}/messages", tenant.business_key)
    assert answer.status == 404


async def test_a_session_token_may_not_read_messages(tenant: Tenant) -> None:
    salon = await open_all_day_salon(tenant)
    booking = await salon.booking(tomorrow_at(12))
    token = await tenant.session_token()
    answer = await tenant.api.get(f"/api/v1/bookings/{booking['id']}/messages", token)
    assert answer.status == 403


async def test_a_refused_recipient_fails_the_message_but_not_the_booking(
    stack: LocalStack, tenant: Tenant
) -> None:
    salon = await open_all_day_salon(tenant)
    token = await tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(14)))
    client = {**JANE, "email": f"nobody@{REFUSED_DOMAIN}"}
    booking = created(
        await tenant.api.post(
            "/api/v1/bookings", token, {"hold_id": hold["hold_id"], "client": client}
        )
    )
    assert booking["status"] == "confirmed"
    failed = await wait_for_status(tenant, booking["id"], "failed")
    [attempt] = failed["attempts"]
    assert "550" in attempt["error"]  # refused for good: not retried
    assert mails_of(stack, booking["id"]) == []


async def test_mails_ending_together_each_keep_their_own_outcome(
    stack: LocalStack, tenant: Tenant
) -> None:
    salon = await open_all_day_salon(tenant)
    token = await tenant.session_token()
    refused = {i for i in range(24) if i % 3 == 0}

    async def book(i: int) -> str:
        hold = created(await salon.hold(token, tomorrow_at(0) + timedelta(minutes=30 * i)))
        email = f"client{i}@{REFUSED_DOMAIN}" if i in refused else f"client{i}@example.com"
        booking = created(
            await tenant.api.post(
                "/api/v1/bookings",
                token,
                {"hold_id": hold["hold_id"], "client": {**JANE, "email": email}},
            )
        )
        return str(booking["id"])

    # Bookings made together: their mails are sent, and their outcomes recorded, side by side.
    booking_ids = await asyncio.gather(*(book(i) for i in range(24)))
    for i, booking_id in enumerate(booking_ids):
        outcome = "failed" if i in refused else "sent"
        message = await wait_for_status(tenant, booking_id, outcome)
        [attempt] = message["attempts"]
        assert (attempt["error"] is not None) is (i in refused), (i, attempt)
        assert (message["sent_at"] is not None) is (i not in refused), (i, message)
        assert len(mails_of(stack, booking_id)) == (0 if i in refused else 1), i


async def test_an_smtp_outage_neither_blocks_a_booking_nor_loses_its_mail(
    stack: LocalStack, tenant: Tenant
) -> None:
    salon = await open_all_day_salon(tenant)
    stack.stores["smtp"].process.stop()
    try:
        booking = await salon.booking(tomorrow_at(15, 30))
        assert booking["status"] == "confirmed"
        for _ in range(100):
            found = await messages(tenant, booking["id"])
            if found and found[0]["attempts"]:
                break
            await asyncio.sleep(0.1)
        [message] = found
        assert message["status"] == "pending"
        assert message["attempts"][0]["error"]
    finally:
        stack.restart_smtp()
    # The retry (5 s after the first attempt) finds the server back.
    await wait_for_mails(stack, booking["id"], "confirmation", timeout=30)
    sent = await wait_for_status(tenant, booking["id"], "sent")
    assert len(sent["attempts"]) >= 2
    await asyncio.sleep(1)
    assert len(mails_of(stack, booking["id"])) == 1


async def test_a_mail_server_restart_between_two_mails_fails_no_attempt(
    stack: LocalStack, tenant: Tenant
) -> None:
    # notify-service keeps its SMTP connection between mails; the restart closes it.
    salon = await open_all_day_salon(tenant)
    first = await salon.booking(tomorrow_at(17))
    await wait_for_status(tenant, first["id"], "sent")
    stack.stores["smtp"].process.stop()
    stack.restart_smtp()
    second = await salon.booking(tomorrow_at(17, 30))
    await wait_for_mails(stack, second["id"], "confirmation")
    sent = await wait_for_status(tenant, second["id"], "sent")
    assert [a["error"] for a in sent["attempts"]] == [None]


async def test_a_business_that_wants_no_confirmation_mail_gets_none_but_cancellations(
    stack: LocalStack, tenant: Tenant
) -> None:
    business = await set_messaging(tenant, client_emails=["cancellation"])
    assert business["client_emails"] == ["cancellation"]
    salon = await open_all_day_salon(tenant)
    booking = await salon.booking(tomorrow_at(16))
    await tenant.api.delete(f"/api/v1/bookings/{booking['id']}", tenant.business_key)
    await wait_for_mails(stack, booking["id"], "cancellation")
    assert mails_of(stack, booking["id"], "confirmation") == []
    assert [m["kind"] for m in await messages(tenant, booking["id"])] == ["cancellation"]


async def test_a_deposit_booking_is_confirmed_by_mail_once_paid_not_before(
    stack: LocalStack, tenant: Tenant
) -> None:
    salon = await open_all_day_salon(tenant)
    booking = await salon.booking(tomorrow_at(9), service_id=salon.deposit_service_id)
    assert booking["status"] == "pending"
    # The local Stripe server's payment page: paying confirms the booking.
    async with tenant.api.session.post(booking["redirect_url"]) as paid:
        assert paid.status == 200
    [mail] = await wait_for_mails(stack, booking["id"], "confirmation")
    assert mail["Subject"].startswith("Booking confirmed: ")
    # Events of a booking are taken in order: the pending booking.created before the
    # booking.confirmed made no mail of its own.
    assert [m["kind"] for m in await messages(tenant, booking["id"])] == ["confirmation"]


async def test_the_manage_link_is_in_both_parts_and_in_the_calendar_file(tenant: Tenant) -> None:
    salon = await open_all_day_salon(tenant)
    booking = await salon.booking(tomorrow_at(12))
    # A booking document as the API shows it, with the link to change or cancel it.
    link = "https://book.example.com/manage/tok_<&>"
    event = {
        "id": str(uuid.uuid4()),
        "type": "booking.created",
        "timestamp": booking["created_at"],
        "business_id": tenant.business_id,
        "business": {"name": "Cuts", "client_emails": ["confirmation"]},
        "data": {**booking, "manage_url": link},
    }
    mail = as_received(compose("confirmation", event, uuid.uuid4(), "Cuts <bookings@example.com>"))
    bodies = parts(mail)
    assert link in bodies["text/plain"]
    assert 'href="https://book.example.com/manage/tok_&lt;&amp;&gt;"' in bodies["text/html"]
    [calendar_event] = icalendar.Calendar.from_ical(attachment(mail)).walk("VEVENT")
    assert str(calendar_event["url"]) == link


async def test_two_notify_service_replicas_send_each_mail_once(
    stack: LocalStack, tenant: Tenant
) -> None:
    original = stack.services["notify-service"]
    port = free_port()
    replica = stack.start_service("notify-service", {"NOTIFY_SERVICE_PORT": str(port)})
    # start_service tracks the newest process under the name: the stack keeps the first.
    stack.services["notify-service"] = original
    wait_for_port(port, 60, replica)
    try:
        salon = await open_all_day_salon(tenant)
        bookings = await asyncio.gather(
            *(salon.booking(tomorrow_at(9) + timedelta(minutes=30 * i)) for i in range(12))
        )
        for booking in bookings:
            await wait_for_mails(stack, booking["id"], "confirmation")
        await asyncio.sleep(1)
        for booking in bookings:
            assert len(mails_of(stack, booking["id"])) == 1
    finally:
        replica.stop()


async def test_a_mail_whose_sender_was_killed_mid_send_goes_out_once_after_its_lease(
    stack: LocalStack, tenant: Tenant
) -> None:
    # A short send deadline makes a short lease (three deadlines and 20 s).
    await asyncio.to_thread(
        restart_notify_service, stack, crash=True, env={"SMTP_TIMEOUT_SECONDS": "3"}
    )
    salon = await open_all_day_salon(tenant)
    mail_server = stack.stores["smtp"].process
    try:
        with mail_server.frozen():  # the send hangs, under way
            booking = await salon.booking(tomorrow_at(10, 30))
            await asyncio.sleep(1.5)  # within the send's 3 s deadline
            stack.services["notify-service"].kill()
            [(status, attempt, recorded)] = await _message_rows(stack, booking["id"])
            assert (status, attempt, recorded) == ("pending", 1, 0)  # under way when killed
    finally:
        await asyncio.to_thread(restart_notify_service, stack, crash=True)
    # The restarted service takes the message over once the dead one's lease is out.
    await wait_for_mails(stack, booking["id"], "confirmation", timeout=60)
    sent = await wait_for_status(tenant, booking["id"], "sent")
    assert [a["error"] for a in sent["attempts"]] == [None]
    await asyncio.sleep(1)
    assert len(mails_of(stack, booking["id"])) == 1


async def _message_rows(stack: LocalStack, booking_id: str) -> list[tuple[str, int, int]]:
    """The booking's messages as stored: status, attempts started, attempts recorded."""
    async with notify_db(stack) as db:
        rows = await db.fetch(
            """
            SELECT m.status, m.attempt_count,
                   (SELECT count(*) FROM client_message_attempts a WHERE a.message_id = m.id)
            FROM client_messages m WHERE m.booking_id = $1
            """,
            uuid.UUID(booking_id),
        )
    return [(r[0], r[1], r[2]) for r in rows]
