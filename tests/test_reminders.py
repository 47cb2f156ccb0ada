"""Reminders: a `booking.reminder` event (webhook and mail) once per booking and
reminder, at its time, whatever crashes in between.

The test stack's reminder "minute" lasts one second (REMINDER_MINUTE_SECONDS=1), so a
reminder set `before_minutes: n` goes out n seconds before the booking starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from calendence.devstack.processes import free_port, wait_for_port
from calendence.devstack.stack import LocalStack
from calendence.devstack.stores import start_nats

from tests.api import Tenant, iso
from tests.booking_helpers import Salon, booking_service_run_with
from tests.mail_helpers import (
    lead_for,
    mails_of,
    next_start,
    open_all_day_salon,
    parts,
    set_messaging,
    wait_for_mails,
)
from tests.webhook_receiver import (
    Received,
    WebhookReceiver,
    create_endpoint,
    of_booking,
    restart_notify_service,
)

REMINDER = "booking.reminder"
# Far enough ahead that the booking is made before any reminder of it falls due.
DUE_IN = 4.0
# The same for tests that make several bookings first.
MANY_DUE_IN = 8.0


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


async def reminders_of(
    receiver: WebhookReceiver, booking_id: str, count: int = 1, timeout: float = 30.0
) -> list[Received]:
    return await receiver.wait_for(of_booking(booking_id, REMINDER), timeout, count)


def reminders_seen(receiver: WebhookReceiver, booking_id: str) -> list[dict[str, Any]]:
    return [r.json["data"] for r in receiver.received if of_booking(booking_id, REMINDER)(r)]


async def book_with_reminder(
    tenant: Tenant, receiver: WebhookReceiver, *, due_in: float = DUE_IN, ahead: int = 2
) -> tuple[dict[str, Any], datetime]:
    """A booking whose business's one reminder falls due `due_in` seconds from now;
    the booking and when the reminder is due."""
    await create_endpoint(tenant, receiver.url(), events=[REMINDER])
    salon = await open_all_day_salon(tenant)
    starts_at = next_start(timedelta(minutes=ahead))
    lead = lead_for(starts_at, due_in)
    await set_messaging(tenant, reminders=[{"before_minutes": lead}])
    booking = await salon.booking(starts_at)
    return booking, starts_at - timedelta(seconds=lead)


async def same_time_bookings(salon: Salon, starts_at: datetime, count: int) -> list[dict[str, Any]]:
    """`count` bookings starting together, each of a service of its own (no staff: each
    service at the location is a resource of its own)."""
    services = [await salon.tenant.service([salon.location_id]) for _ in range(count)]
    return [await salon.booking(starts_at, service_id=s["id"]) for s in services]


async def test_business_sets_up_to_five_distinct_reminders_and_its_client_emails(
    tenant: Tenant,
) -> None:
    path = f"/api/v1/businesses/{tenant.business_id}"
    shown = await tenant.api.get(path, tenant.business_key)
    assert shown.body["reminders"] == []
    assert shown.body["client_emails"] == ["confirmation", "cancellation", "reschedule", "reminder"]
    business = await set_messaging(
        tenant, reminders=[{"before_minutes": 1440}, {"before_minutes": 120}]
    )
    assert business["reminders"] == [{"before_minutes": 1440}, {"before_minutes": 120}]
    for refused in (
        {"reminders": [{"before_minutes": m} for m in range(1, 7)]},
        {"reminders": [{"before_minutes": 60}, {"before_minutes": 60}]},
        {"reminders": [{"before_minutes": 0}]},
        {"client_emails": ["newsletter"]},
    ):
        answer = await tenant.api.patch(path, tenant.business_key, refused)
        assert answer.status == 422, (refused, answer.body)
        assert answer.body["errors"]


async def test_a_reminder_reaches_webhooks_and_the_client_once_at_its_time(
    stack: LocalStack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    booking, due_at = await book_with_reminder(tenant, receiver)
    [received] = await reminders_of(receiver, booking["id"])
    arrived = datetime.now(UTC)
    assert arrived >= due_at
    document = received.json["data"]
    assert document["id"] == booking["id"] and document["starts_at"] == booking["starts_at"]
    assert document["reminder"]["due_at"] == iso(due_at)
    [mail] = await wait_for_mails(stack, booking["id"], "reminder")
    assert mail["Subject"].startswith("Reminder: ")
    assert "A reminder" in parts(mail)["text/plain"]
    await asyncio.sleep(1)  # past any second go
    assert len(reminders_seen(receiver, booking["id"])) == 1
    assert len(mails_of(stack, booking["id"], "reminder")) == 1


async def test_a_due_reminder_wakes_the_outbox_relay_at_once(
    stack: LocalStack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    # The relay looks for events on its own only every 60 s here.
    with booking_service_run_with(stack, {"OUTBOX_POLL_SECONDS": "60"}):
        booking, _ = await book_with_reminder(tenant, receiver)
        await reminders_of(receiver, booking["id"], timeout=DUE_IN + 10)


async def test_reminders_already_past_when_booked_are_never_sent(
    tenant: Tenant, receiver: WebhookReceiver
) -> None:
    await create_endpoint(tenant, receiver.url(), events=[REMINDER])
    salon = await open_all_day_salon(tenant)
    starts_at = next_start(timedelta(minutes=2))
    soon = lead_for(starts_at, DUE_IN)
    past = lead_for(starts_at, -60)  # due a minute ago
    await set_messaging(tenant, reminders=[{"before_minutes": past}, {"before_minutes": soon}])
    booking = await salon.booking(starts_at)
    [received] = await reminders_of(receiver, booking["id"])
    assert received.json["data"]["reminder"]["before_minutes"] == soon
    await asyncio.sleep(1)
    assert [d["reminder"]["before_minutes"] for d in reminders_seen(receiver, booking["id"])] == [
        soon
    ]


async def test_a_cancelled_booking_gets_no_reminder(
    stack: LocalStack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    booking, due_at = await book_with_reminder(tenant, receiver, due_in=4)
    answer = await tenant.api.delete(f"/api/v1/bookings/{booking['id']}", tenant.business_key)
    assert answer.status == 200
    await asyncio.sleep((due_at - datetime.now(UTC)).total_seconds() + 1.5)
    assert reminders_seen(receiver, booking["id"]) == []
    await wait_for_mails(stack, booking["id"], "cancellation")
    assert mails_of(stack, booking["id"], "reminder") == []


async def test_a_rescheduled_booking_is_reminded_of_its_new_time(
    tenant: Tenant, receiver: WebhookReceiver
) -> None:
    await create_endpoint(tenant, receiver.url(), events=[REMINDER])
    salon = await open_all_day_salon(tenant)
    moved_to = next_start(timedelta(minutes=2))
    first = moved_to + timedelta(minutes=5)
    lead = lead_for(moved_to, DUE_IN)  # due within seconds for the new time only
    await set_messaging(tenant, reminders=[{"before_minutes": lead}])
    booking = await salon.booking(first)
    answer = await tenant.api.patch(
        f"/api/v1/bookings/{booking['id']}", tenant.business_key, {"starts_at": iso(moved_to)}
    )
    assert answer.status == 200, answer.body
    [received] = await reminders_of(receiver, booking["id"])
    assert received.json["data"]["starts_at"] == iso(moved_to)
    assert received.json["data"]["reminder"]["due_at"] == iso(moved_to - timedelta(seconds=lead))


async def test_changing_the_business_reminders_rearms_upcoming_bookings(
    tenant: Tenant, receiver: WebhookReceiver
) -> None:
    await create_endpoint(tenant, receiver.url(), events=[REMINDER])
    salon = await open_all_day_salon(tenant)
    starts_at = next_start(timedelta(minutes=2))
    booking = await salon.booking(starts_at)  # no reminders yet
    lead = lead_for(starts_at, DUE_IN)
    await set_messaging(tenant, reminders=[{"before_minutes": lead}])
    [received] = await reminders_of(receiver, booking["id"])
    assert received.json["data"]["reminder"]["before_minutes"] == lead


async def test_a_business_without_client_reminder_mails_still_gets_reminder_webhooks(
    stack: LocalStack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    await set_messaging(tenant, client_emails=[])
    booking, _ = await book_with_reminder(tenant, receiver)
    await reminders_of(receiver, booking["id"])
    answer = await tenant.api.get(f"/api/v1/bookings/{booking['id']}/messages", tenant.business_key)
    assert answer.body["data"] == []
    assert mails_of(stack, booking["id"]) == []


async def test_without_an_smtp_server_reminder_webhooks_still_go_out(
    stack: LocalStack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    restart_notify_service(stack, env={"SMTP_URL": ""})
    try:
        booking, _ = await book_with_reminder(tenant, receiver)
        await reminders_of(receiver, booking["id"])
        assert mails_of(stack, booking["id"]) == []
    finally:
        restart_notify_service(stack)


async def test_a_booking_service_killed_before_the_reminder_sends_it_once_after_restart(
    stack: LocalStack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    booking, due_at = await book_with_reminder(tenant, receiver, due_in=3)
    stack.services["booking-service"].kill()
    try:
        # Down while the reminder falls due.
        await asyncio.sleep((due_at - datetime.now(UTC)).total_seconds() + 1)
        assert reminders_seen(receiver, booking["id"]) == []
    finally:
        stack.start_service("booking-service")
        stack.wait_until_ready()
    await reminders_of(receiver, booking["id"])
    await wait_for_mails(stack, booking["id"], "reminder")
    await asyncio.sleep(1)
    assert len(reminders_seen(receiver, booking["id"])) == 1
    assert len(mails_of(stack, booking["id"], "reminder")) == 1


async def test_a_booking_service_killed_while_sending_reminders_sends_each_once(
    stack: LocalStack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    await create_endpoint(tenant, receiver.url(), events=[REMINDER])
    salon = await open_all_day_salon(tenant)
    starts_at = next_start(timedelta(minutes=2))
    # Five reminders a second apart.
    leads = [lead_for(starts_at, MANY_DUE_IN) - i for i in range(5)]
    await set_messaging(tenant, reminders=[{"before_minutes": m} for m in leads])
    bookings = await same_time_bookings(salon, starts_at, 4)
    # Killed a moment before the first reminders fall due, and again among them.
    first_due = starts_at - timedelta(seconds=leads[0])
    await asyncio.sleep((first_due - datetime.now(UTC)).total_seconds() - 0.1)
    for pause in (0.0, 1.5):
        await asyncio.sleep(pause)
        stack.services["booking-service"].kill()
        stack.start_service("booking-service")
    stack.wait_until_ready()
    for booking in bookings:
        await reminders_of(receiver, booking["id"], count=5)
    await asyncio.sleep(1)
    for booking in bookings:
        seen = sorted(
            d["reminder"]["before_minutes"] for d in reminders_seen(receiver, booking["id"])
        )
        assert seen == sorted(leads)


async def test_a_notify_service_killed_around_the_reminder_delivers_it_once(
    stack: LocalStack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    booking, due_at = await book_with_reminder(tenant, receiver, due_in=3)
    await asyncio.sleep(max((due_at - datetime.now(UTC)).total_seconds() - 0.5, 0))
    restart_notify_service(stack, crash=True)
    await reminders_of(receiver, booking["id"])
    await wait_for_mails(stack, booking["id"], "reminder")
    await asyncio.sleep(1)
    assert len(reminders_seen(receiver, booking["id"])) == 1
    assert len(mails_of(stack, booking["id"], "reminder")) == 1


async def test_a_nats_restart_neither_loses_nor_doubles_a_reminder(
    stack: LocalStack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    booking, due_at = await book_with_reminder(tenant, receiver, due_in=3)
    nats = stack.stores["nats"]
    port = int(nats.url.rsplit(":", 1)[1])
    nats.process.stop()
    try:
        # NATS is down while the reminder falls due: its event waits in the outbox.
        await asyncio.sleep((due_at - datetime.now(UTC)).total_seconds() + 1)
        assert reminders_seen(receiver, booking["id"]) == []
    finally:
        stack.stores["nats"] = start_nats(stack.state_dir, port)
    await reminders_of(receiver, booking["id"], timeout=60)
    await wait_for_mails(stack, booking["id"], "reminder", timeout=60)
    await asyncio.sleep(1)
    assert len(reminders_seen(receiver, booking["id"])) == 1
    assert len(mails_of(stack, booking["id"], "reminder")) == 1
    stack.wait_until_ready()


async def test_two_booking_service_replicas_send_each_reminder_once(
    stack: LocalStack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    original = stack.services["booking-service"]
    port = free_port()
    replica = stack.start_service("booking-service", {"BOOKING_SERVICE_PORT": str(port)})
    # start_service tracks the newest process under the name: the stack keeps the first.
    stack.services["booking-service"] = original
    wait_for_port(port, 60, replica)
    try:
        await create_endpoint(tenant, receiver.url(), events=[REMINDER])
        salon = await open_all_day_salon(tenant)
        starts_at = next_start(timedelta(minutes=2))
        leads = [lead_for(starts_at, MANY_DUE_IN) - i for i in range(5)]
        await set_messaging(tenant, reminders=[{"before_minutes": m} for m in leads])
        bookings = await same_time_bookings(salon, starts_at, 5)
        for booking in bookings:
            await reminders_of(receiver, booking["id"], count=5)
        await asyncio.sleep(1)
        for booking in bookings:
            assert len(reminders_seen(receiver, booking["id"])) == 5
    finally:
        replica.stop()
