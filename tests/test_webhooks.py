"""Signed webhooks from booking events: delivered, retried, ordered, never lost.

Each test runs a real HTTP receiver in this process; events travel from the gateway
through booking-service's outbox and JetStream to notify-service, which POSTs them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from calendence.devstack.processes import ManagedProcess, free_port, wait_for_port
from calendence.devstack.stack import LocalStack
from calendence.events import event_subject

from tests.api import Tenant, tomorrow_at
from tests.booking_helpers import Salon, open_salon
from tests.events import EventTap
from tests.mail_helpers import mails_of, wait_for_mails
from tests.webhook_receiver import (
    ALLOW_PRIVATE,
    ENDPOINTS,
    WebhookReceiver,
    allow_private_targets,
    create_endpoint,
    deliveries,
    notify_db,
    of_booking,
    restart_notify_service,
    retry_now,
    wait_for_attempts,
)

# WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT as make run (and production) leave it.
PER_ENDPOINT = 16


@pytest.fixture(autouse=True, scope="module")
def _receivers_on_localhost(stack: LocalStack) -> None:
    allow_private_targets(stack)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


@pytest.fixture
async def salon(tenant: Tenant) -> Salon:
    return await open_salon(tenant)


async def cancel(salon: Salon, booking_id: str) -> None:
    answer = await salon.tenant.api.delete(
        f"/api/v1/bookings/{booking_id}", salon.tenant.business_key
    )
    assert answer.status == 200, answer.body


async def failed_once(
    salon: Salon, receiver: WebhookReceiver, start: datetime
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An endpoint answering 500, a booking at `start`, and its delivery to the endpoint
    once the first attempt is listed: (endpoint, booking, delivery)."""
    receiver.answer("/hook", status=500)
    endpoint = await create_endpoint(salon.tenant, receiver.url("/hook"))
    booking = await salon.booking(start)
    (delivery,) = await wait_for_attempts(salon.tenant, endpoint["id"], 1)
    return endpoint, booking, delivery


async def test_a_webhook_verifies_with_the_secret_returned_at_creation(
    salon: Salon, receiver: WebhookReceiver
) -> None:
    endpoint = await create_endpoint(salon.tenant, receiver.url())
    assert endpoint["secret"].startswith("whsec_")
    booking = await salon.booking(tomorrow_at(10))
    (webhook,) = await receiver.wait_for(of_booking(booking["id"], "booking.created"))
    document = webhook.verify(endpoint["secret"])
    assert document.keys() == {"type", "timestamp", "data"}
    assert document["data"]["id"] == booking["id"]
    assert webhook.headers["webhook-signature"].startswith("v1,")
    assert abs(int(webhook.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60
    assert webhook.headers["Content-Type"] == "application/json"


async def test_cancelling_delivers_booking_cancelled_with_the_cancelled_booking(
    salon: Salon, receiver: WebhookReceiver
) -> None:
    endpoint = await create_endpoint(salon.tenant, receiver.url())
    booking = await salon.booking(tomorrow_at(11))
    await cancel(salon, booking["id"])
    (webhook,) = await receiver.wait_for(of_booking(booking["id"], "booking.cancelled"))
    document = webhook.verify(endpoint["secret"])
    assert document["data"]["status"] == "cancelled"
    assert document["data"]["cancelled_at"]


async def test_a_webhook_goes_out_at_once_after_events_no_endpoint_wanted(
    stack: LocalStack, salon: Salon, receiver: WebhookReceiver
) -> None:
    # Deliveries are polled for only every 30 s here: a webhook sooner was woken by
    # its own event, although the events just before it made no delivery.
    restart_notify_service(stack, env={"WEBHOOKS_POLL_SECONDS": "30"})
    try:
        await create_endpoint(salon.tenant, receiver.url(), events=["booking.cancelled"])
        # Events the stopped process had fetched but not acknowledged come again after
        # JetStream's ack wait (30 s), and none after them goes out before: once one
        # cancellation has gone out, notify-service is past them.
        warm_up = await salon.booking(tomorrow_at(12))
        await cancel(salon, warm_up["id"])
        await receiver.wait_for(of_booking(warm_up["id"], "booking.cancelled"), timeout=45)
        first = await salon.booking(tomorrow_at(13))
        await salon.booking(tomorrow_at(14))
        await cancel(salon, first["id"])
        await receiver.wait_for(of_booking(first["id"], "booking.cancelled"), timeout=5)
    finally:
        restart_notify_service(stack)


async def test_an_endpoint_gets_only_the_events_it_subscribed_to(
    salon: Salon, receiver: WebhookReceiver
) -> None:
    endpoint = await create_endpoint(salon.tenant, receiver.url(), events=["booking.cancelled"])
    booking = await salon.booking(tomorrow_at(12))
    await cancel(salon, booking["id"])
    await receiver.wait_for(of_booking(booking["id"], "booking.cancelled"))
    assert [r.json["type"] for r in receiver.received] == ["booking.cancelled"]
    assert [d["event_type"] for d in await deliveries(salon.tenant, endpoint["id"])] == [
        "booking.cancelled"
    ]


async def test_a_failing_endpoint_is_retried_with_the_same_webhook_id_and_attempts_listed(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    endpoint, booking, _ = await failed_once(salon, receiver, tomorrow_at(13))
    receiver.answer("/hook", status=204)
    await retry_now(stack, endpoint["id"])
    first, second = await receiver.wait_for(of_booking(booking["id"]), count=2)
    assert first.webhook_id == second.webhook_id
    second.verify(endpoint["secret"])
    (delivery,) = await wait_for_attempts(salon.tenant, endpoint["id"], 2)
    assert delivery["status"] == "succeeded"
    assert delivery["event_id"] == first.webhook_id
    attempts = delivery["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 204]
    assert attempts[0]["error"] == "HTTP 500"
    assert attempts[1]["error"] is None
    assert all(a["latency_ms"] >= 0 for a in attempts)


async def test_a_delivery_listed_while_an_attempt_is_recorded_shows_the_attempt_with_its_outcome(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    endpoint, _, delivery = await failed_once(salon, receiver, tomorrow_at(13))
    async with notify_db(stack) as recorder, notify_db(stack) as observer:
        async with recorder.transaction():
            # A successful second attempt and the delivery's outcome, committed together
            # as the dispatcher records them; the lock holds up whatever reads attempts
            # until the commit, so a listing is caught in the middle.
            await recorder.execute("LOCK TABLE webhook_attempts IN ACCESS EXCLUSIVE MODE")
            await recorder.execute(
                "UPDATE webhook_deliveries SET status = 'succeeded', completed_at = now() "
                "WHERE id = $1",
                delivery["id"],
            )
            await recorder.execute(
                "INSERT INTO webhook_attempts "
                "(delivery_id, attempt, attempted_at, status_code, latency_ms) "
                "VALUES ($1, 2, now(), 204, 1)",
                delivery["id"],
            )
            listing = asyncio.create_task(deliveries(salon.tenant, endpoint["id"]))
            await wait_until_attempts_are_read_behind(observer, recorder.get_server_pid())
    (listed,) = await listing
    assert listed["status"] == "succeeded"
    assert [a["status_code"] for a in listed["attempts"]] == [500, 204]


async def wait_until_attempts_are_read_behind(
    observer: asyncpg.Connection, blocker: int, timeout: float = 10.0
) -> None:
    """Until a statement reading webhook attempts waits for the `blocker` backend."""
    deadline = time.monotonic() + timeout
    while not await observer.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity "
        "WHERE $1 = ANY (pg_blocking_pids(pid)) AND query LIKE '%webhook_attempts%')",
        blocker,
    ):
        assert time.monotonic() < deadline, "no listing waited for the recording"
        await asyncio.sleep(0.01)


async def test_a_timed_out_attempt_is_retried_and_then_succeeds(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    receiver.answer("/slow", delay=12)
    endpoint = await create_endpoint(salon.tenant, receiver.url("/slow"))
    booking = await salon.booking(tomorrow_at(14))
    (delivery,) = await wait_for_attempts(salon.tenant, endpoint["id"], 1, timeout=20)
    attempt = delivery["attempts"][0]
    assert attempt["status_code"] is None
    assert attempt["error"] == "timed out after 10 s"
    assert attempt["latency_ms"] >= 9_900
    receiver.answer("/slow")
    await retry_now(stack, endpoint["id"])
    first, second = await receiver.wait_for(of_booking(booking["id"]), count=2)
    assert first.webhook_id == second.webhook_id
    (delivery,) = await wait_for_attempts(salon.tenant, endpoint["id"], 2)
    assert delivery["status"] == "succeeded"


async def test_pending_retries_and_new_events_survive_killing_notify_service(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    receiver.answer("/hook", status=503)
    endpoint = await create_endpoint(salon.tenant, receiver.url("/hook"))
    first = await salon.booking(tomorrow_at(10))
    await wait_for_attempts(salon.tenant, endpoint["id"], 1)
    stack.services["notify-service"].kill()
    # Events made while notify-service is down wait in JetStream.
    await cancel(salon, first["id"])
    second = await salon.booking(tomorrow_at(11))
    receiver.answer("/hook", status=200)
    restart_notify_service(stack)
    await retry_now(stack, endpoint["id"])
    await receiver.wait_for(of_booking(second["id"], "booking.created"))
    await receiver.wait_for(of_booking(first["id"], "booking.cancelled"))
    created = await receiver.wait_for(of_booking(first["id"], "booking.created"), count=2)
    assert created[0].webhook_id == created[1].webhook_id
    # A webhook can arrive a moment before its attempt is recorded (by the dispatcher's
    # next call): the first 503 and the three answers that followed it.
    found = await wait_for_attempts(salon.tenant, endpoint["id"], 4)
    assert sorted(d["event_type"] for d in found) == [
        "booking.cancelled",
        "booking.created",
        "booking.created",
    ]
    assert {d["status"] for d in found} == {"succeeded"}


async def test_an_event_taken_but_not_stored_when_notify_service_stops_goes_out_at_restart(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    # Without a word from the stopping replica, JetStream would send the event again
    # only once its ack wait (30 s) is out: a deploy under load would hold events back.
    await create_endpoint(salon.tenant, receiver.url("/hook"))
    async with notify_db(stack) as db:
        async with db.transaction():
            # Every store of events waits for this lock while the test holds it.
            await db.execute("LOCK TABLE event_receipts IN SHARE ROW EXCLUSIVE MODE")
            booking = await salon.booking(tomorrow_at(10))
            await _until_a_store_waits_for_the_lock(db)
            await asyncio.to_thread(stack.services["notify-service"].stop)
        restart_notify_service(stack)
        await receiver.wait_for(of_booking(booking["id"], "booking.created"), timeout=15)


async def _until_a_store_waits_for_the_lock(db: asyncpg.Connection) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("notify-service never tried to store the event")


async def test_an_event_jetstream_sends_twice_reaches_the_endpoint_and_client_once(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack, tap: EventTap
) -> None:
    # notify-service acks a batch once it is stored, without waiting for NATS's answer:
    # killed between the two, it is sent the batch again, as here.
    await create_endpoint(salon.tenant, receiver.url("/hook"))
    booking = await salon.booking(tomorrow_at(10))
    event = await tap.wait_for(booking["id"], "booking.created")
    await receiver.wait_for(of_booking(booking["id"], "booking.created"))
    await tap.js.publish(
        event_subject(event["type"]),
        orjson.dumps(event),
        headers={"Nats-Msg-Id": f"sent-again-{event['id']}"},
    )
    # A booking made after the repeat is delivered after it: the repeat has been handled.
    later = await salon.booking(tomorrow_at(11))
    await receiver.wait_for(of_booking(later["id"], "booking.created"))
    await wait_for_mails(stack, later["id"], "confirmation")
    assert len([r for r in receiver.received if of_booking(booking["id"])(r)]) == 1
    assert len(mails_of(stack, booking["id"])) == 1


async def test_a_slow_endpoint_does_not_delay_another(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    receiver.answer("/slow", delay=30)
    slow = await create_endpoint(salon.tenant, receiver.url("/slow"))
    await create_endpoint(salon.tenant, receiver.url("/fast"))
    # More events than one endpoint's share of attempts: 12 half-hour slots a day.
    slots = [tomorrow_at(10 + i // 2, 30 * (i % 2)) for i in range(12)]
    slots += [slot + timedelta(days=1) for slot in slots[: PER_ENDPOINT + 4 - len(slots)]]
    bookings = [await salon.booking(slot) for slot in slots]
    fast = await receiver.wait_for(lambda r: r.path == "/fast", count=len(slots), timeout=10)
    assert {r.json["data"]["id"] for r in fast} == {b["id"] for b in bookings}
    # The slow one holds at most its own share of attempts, and none has come back yet.
    assert receiver.most_in_flight["/slow"] == PER_ENDPOINT
    assert len(receiver.at("/slow")) == PER_ENDPOINT
    await salon.tenant.api.delete(f"{ENDPOINTS}/{slow['id']}", salon.tenant.business_key)


async def booking_whose_webhook_hangs(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack, hang: float, mail_wait: float
) -> str:
    """A booking whose first webhook attempt is under way (the endpoint answers after
    `hang` seconds), from a notify-service whose emails wait for webhooks at most
    `mail_wait` seconds."""
    restart_notify_service(
        stack,
        env={"MAIL_WAIT_FOR_WEBHOOKS_SECONDS": str(mail_wait), "SHUTDOWN_GRACE_SECONDS": "1"},
    )
    receiver.answer("/hook", delay=hang)
    await create_endpoint(salon.tenant, receiver.url("/hook"))
    booking = await salon.booking(tomorrow_at(13))
    await receiver.wait_for(of_booking(booking["id"]))
    return str(booking["id"])


async def test_client_emails_wait_while_a_webhook_attempt_is_under_way(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    try:
        booking_id = await booking_whose_webhook_hangs(salon, receiver, stack, 5, mail_wait=60)
        await asyncio.sleep(1.5)
        # Webhooks go first: no email while the attempt is under way, then at once.
        assert receiver.in_flight["/hook"] == 1
        assert mails_of(stack, booking_id) == []
        await wait_for_mails(stack, booking_id, "confirmation", timeout=15)
    finally:
        restart_notify_service(stack)


async def test_a_hanging_endpoint_holds_client_emails_back_only_for_the_wait(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    try:
        booking_id = await booking_whose_webhook_hangs(salon, receiver, stack, 30, mail_wait=1)
        await wait_for_mails(stack, booking_id, "confirmation", timeout=8)
        # The attempt still hangs (it times out after 10 s): the email did not wait for it.
        assert receiver.in_flight["/hook"] == 1
    finally:
        restart_notify_service(stack)


async def test_events_of_one_booking_arrive_in_the_order_they_happened(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    receiver.answer("/hook", status=500)
    endpoint = await create_endpoint(salon.tenant, receiver.url("/hook"))
    booking = await salon.booking(tomorrow_at(12))
    await receiver.wait_for(of_booking(booking["id"], "booking.created"))
    path = f"/api/v1/bookings/{booking['id']}"
    edit = await salon.tenant.api.patch(path, salon.tenant.business_key, {"notes": "Upstairs"})
    assert edit.status == 200, edit.body
    await cancel(salon, booking["id"])
    # The later events are stored, but wait behind the failing first one.
    async with notify_db(stack) as db:
        for _ in range(100):
            stored = await db.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", endpoint["id"]
            )
            if stored == 3:
                break
            await asyncio.sleep(0.05)
    assert stored == 3
    await asyncio.sleep(0.5)
    assert [r.json["type"] for r in receiver.received] == ["booking.created"]
    receiver.answer("/hook", status=200)
    await retry_now(stack, endpoint["id"])
    await receiver.wait_for(of_booking(booking["id"], "booking.cancelled"))
    assert [r.json["type"] for r in receiver.received] == [
        "booking.created",
        "booking.created",
        "booking.updated",
        "booking.cancelled",
    ]


async def test_after_a_rotation_both_secrets_verify_for_24_hours(
    salon: Salon, receiver: WebhookReceiver
) -> None:
    endpoint = await create_endpoint(salon.tenant, receiver.url())
    rotated = await salon.tenant.api.post(
        f"{ENDPOINTS}/{endpoint['id']}/rotate-secret", salon.tenant.business_key
    )
    assert rotated.status == 200, rotated.body
    new_secret = rotated.body["secret"]
    assert new_secret.startswith("whsec_") and new_secret != endpoint["secret"]
    expires = datetime.fromisoformat(rotated.body["previous_secret_expires_at"])
    assert timedelta(hours=23, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=24)
    booking = await salon.booking(tomorrow_at(15))
    (webhook,) = await receiver.wait_for(of_booking(booking["id"]))
    assert len(webhook.headers["webhook-signature"].split(" ")) == 2
    webhook.verify(new_secret)
    webhook.verify(endpoint["secret"])


async def test_an_endpoint_failing_for_5_days_is_disabled_with_the_reason(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    endpoint, _, _ = await failed_once(salon, receiver, tomorrow_at(10))
    async with notify_db(stack) as db:
        await db.execute(
            "UPDATE webhook_endpoints SET failing_since = now() - interval '5 days 1 minute' "
            "WHERE id = $1",
            endpoint["id"],
        )
    await retry_now(stack, endpoint["id"])
    await wait_for_attempts(salon.tenant, endpoint["id"], 2)
    shown = await salon.tenant.api.get(f"{ENDPOINTS}/{endpoint['id']}", salon.tenant.business_key)
    assert shown.body["enabled"] is False
    assert shown.body["status"] == "disabled"
    assert "5 days" in shown.body["disabled_reason"]
    assert "HTTP 500" in shown.body["disabled_reason"]
    # Nothing more goes to it while it is disabled.
    await retry_now(stack, endpoint["id"])
    await asyncio.sleep(1.5)
    assert len(receiver.received) == 2


async def test_redelivering_an_event_sends_it_again_with_the_same_webhook_id(
    salon: Salon, receiver: WebhookReceiver
) -> None:
    endpoint = await create_endpoint(salon.tenant, receiver.url())
    booking = await salon.booking(tomorrow_at(11))
    (original,) = await receiver.wait_for(of_booking(booking["id"]))
    answer = await salon.tenant.api.post(
        f"{ENDPOINTS}/{endpoint['id']}/redeliver",
        salon.tenant.business_key,
        {"event_id": original.webhook_id},
    )
    assert answer.status == 202, answer.body
    assert answer.body["redelivery"] is True
    assert answer.body["event_id"] == original.webhook_id
    _, again = await receiver.wait_for(of_booking(booking["id"]), count=2)
    assert again.webhook_id == original.webhook_id
    assert again.body == original.body
    again.verify(endpoint["secret"])


async def test_redelivering_an_unknown_event_is_404(
    salon: Salon, receiver: WebhookReceiver
) -> None:
    endpoint = await create_endpoint(salon.tenant, receiver.url())
    answer = await salon.tenant.api.post(
        f"{ENDPOINTS}/{endpoint['id']}/redeliver",
        salon.tenant.business_key,
        {"event_id": "00000000-0000-4000-8000-000000000000"},
    )
    assert answer.status == 404, answer.body


async def test_a_graceful_stop_hands_running_attempts_back_at_once(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    restart_notify_service(stack, env={"SHUTDOWN_GRACE_SECONDS": "1"})
    receiver.answer("/hook", delay=30)
    await create_endpoint(salon.tenant, receiver.url("/hook"))
    booking = await salon.booking(tomorrow_at(13))
    await receiver.wait_for(of_booking(booking["id"]))
    receiver.answer("/hook")
    # SIGTERM while the attempt hangs: after the grace it is cancelled and its lease
    # given back, so the restarted service sends it again without waiting out a lease.
    restart_notify_service(stack)
    _, again = await receiver.wait_for(of_booking(booking["id"]), count=2, timeout=5)
    assert again.json["type"] == "booking.created"


async def test_two_replicas_deliver_every_event_once_and_in_order(
    salon: Salon, receiver: WebhookReceiver, stack: LocalStack
) -> None:
    port = free_port()
    replica = ManagedProcess(
        "notify-service-2",
        [sys.executable, "-m", "notify_service"],
        stack.state_dir / "logs" / "notify-service-2.log",
        env={**stack.env, ALLOW_PRIVATE: "true", "NOTIFY_SERVICE_PORT": str(port)},
    )
    try:
        wait_for_port(port, 30, replica)
        await create_endpoint(salon.tenant, receiver.url("/hook"))
        bookings = [await salon.booking(tomorrow_at(10 + i // 2, 30 * (i % 2))) for i in range(6)]

        async def change(booking_id: str) -> None:
            path = f"/api/v1/bookings/{booking_id}"
            key = salon.tenant.business_key
            assert (await salon.tenant.api.patch(path, key, {"notes": "a"})).status == 200
            assert (await salon.tenant.api.patch(path, key, {"notes": "b"})).status == 200
            await cancel(salon, booking_id)

        await asyncio.gather(*(change(b["id"]) for b in bookings))
        await receiver.wait_for(lambda r: r.json["type"] == "booking.cancelled", count=6)
        await asyncio.sleep(0.5)
    finally:
        replica.stop()
    ids = [r.webhook_id for r in receiver.received]
    assert len(ids) == len(set(ids)) == 6 * 4
    for booking in bookings:
        assert [
            r.json["type"] for r in receiver.received if r.json["data"]["id"] == booking["id"]
        ] == [
            "booking.created",
            "booking.updated",
            "booking.updated",
            "booking.cancelled",
        ]
