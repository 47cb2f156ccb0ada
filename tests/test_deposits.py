"""Deposits through Stripe Checkout, against the local Stripe-compatible server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import stripe
from calendence.devstack.stack import LocalStack

from tests.api import Api, created, tomorrow_at
from tests.booking_helpers import Salon, booking_service_run_with
from tests.events import EventTap


@pytest.fixture
async def local_stripe(stack: LocalStack) -> AsyncIterator[LocalStripeControl]:
    async with aiohttp.ClientSession() as session:
        control = LocalStripeControl(
            session, stack.env["STRIPE_API_BASE"], stack.env["STRIPE_WEBHOOK_SECRET"]
        )
        try:
            yield control
        finally:
            await control.mode("up")


class LocalStripeControl:
    def __init__(self, session: aiohttp.ClientSession, base: str, secret: str) -> None:
        self.session, self.base, self.secret = session, base, secret

    async def mode(self, mode: str) -> None:
        async with self.session.post(f"{self.base}/_control/mode/{mode}") as answer:
            assert answer.status == 200

    async def calls(self) -> int:
        async with self.session.get(f"{self.base}/_control/calls") as answer:
            return int((await answer.json())["calls"])

    async def checkout_session(self, session_id: str) -> dict[str, Any]:
        async with self.session.get(f"{self.base}/v1/checkout/sessions/{session_id}") as answer:
            return dict(await answer.json())

    async def pay(self, redirect_url: str) -> None:
        async with self.session.post(redirect_url) as answer:
            assert answer.status == 200, await answer.text()

    async def expire(self, session_id: str) -> None:
        url = f"{self.base}/v1/checkout/sessions/{session_id}/expire"
        async with self.session.post(url) as answer:
            assert answer.status == 200

    async def lapse(self, session_id: str) -> None:
        async with self.session.post(f"{self.base}/_control/sessions/{session_id}/lapse"):
            pass

    def signed(self, event: dict[str, Any], secret: str | None = None) -> tuple[bytes, str]:
        payload = orjson.dumps(event).decode()
        return payload.encode(), stripe.WebhookSignature.generate_signature_header(
            payload, secret or self.secret
        )


async def deposit_booking(salon: Salon) -> dict[str, Any]:
    return await salon.booking(tomorrow_at(10), salon.deposit_service_id)


async def ask_deposit(salon: Salon, service_id: str, amount: int) -> None:
    """Change the deposit a service asks (0: none)."""
    changed = await salon.tenant.api.patch(
        f"/api/v1/services/{service_id}", salon.tenant.business_key, {"deposit_amount": amount}
    )
    assert changed.status == 200, changed.body


async def wait_for_status(salon: Salon, booking_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        shown = await salon.tenant.api.get(
            f"/api/v1/bookings/{booking_id}", salon.tenant.business_key
        )
        if shown.body["status"] == status or time.monotonic() > deadline:
            assert shown.body["status"] == status, shown.body
            return dict(shown.body)
        await asyncio.sleep(0.1)


def checkout_event(event_id: str, event_type: str, session: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": session},
    }


async def test_a_deposit_booking_is_pending_with_a_checkout_redirect(
    salon: Salon, local_stripe: LocalStripeControl
) -> None:
    booking = await deposit_booking(salon)
    assert booking["status"] == "pending"
    assert booking["payment"]["status"] == "requires_payment"
    assert booking["payment"]["amount"] == 2000
    assert booking["payment"]["currency"] == "EUR"
    assert booking["redirect_url"].startswith(local_stripe.base + "/pay/cs_test_")


async def test_the_checkout_session_carries_the_booking_and_the_deposit(
    salon: Salon, local_stripe: LocalStripeControl
) -> None:
    booking = await deposit_booking(salon)
    session = await local_stripe.checkout_session(booking["payment"]["checkout_session_id"])
    assert session["mode"] == "payment"
    assert session["amount_total"] == 2000
    assert session["currency"] == "eur"
    assert session["metadata"] == {"booking_id": booking["id"]}
    assert session["client_reference_id"] == booking["id"]
    assert session["customer_email"] == "jane@example.com"
    assert session["success_url"] and session["cancel_url"]
    # Stripe's shortest expiry (30 minutes) is the hold TTL plus a 20-minute margin.
    assert 0 < session["expires_at"] - time.time() <= 30 * 60 + 5


async def test_paying_confirms_the_booking_and_announces_it(
    salon: Salon, local_stripe: LocalStripeControl, tap: EventTap
) -> None:
    booking = await deposit_booking(salon)
    async with local_stripe.session.get(booking["redirect_url"]) as page:
        assert "<button" in await page.text() and "Pay" in await page.text()
    await local_stripe.pay(booking["redirect_url"])
    confirmed = await wait_for_status(salon, booking["id"], "confirmed")
    assert confirmed["payment"]["status"] == "paid"
    assert confirmed["redirect_url"] is None
    await tap.wait_for(booking["id"], "booking.confirmed")


async def test_paying_wakes_the_outbox_relay_at_once(
    stack: LocalStack, salon: Salon, local_stripe: LocalStripeControl, tap: EventTap
) -> None:
    # The relay looks for events on its own only every 60 s here.
    with booking_service_run_with(stack, {"OUTBOX_POLL_SECONDS": "60"}):
        booking = await deposit_booking(salon)
        await local_stripe.pay(booking["redirect_url"])
        await tap.wait_for(booking["id"], "booking.confirmed", timeout=10)


async def test_an_expired_checkout_cancels_the_booking_and_frees_the_slot(
    salon: Salon, local_stripe: LocalStripeControl, tap: EventTap
) -> None:
    booking = await deposit_booking(salon)
    await local_stripe.expire(booking["payment"]["checkout_session_id"])
    cancelled = await wait_for_status(salon, booking["id"], "cancelled")
    assert cancelled["payment"]["status"] == "expired"
    assert cancelled["cancelled_at"] is not None
    await tap.wait_for(booking["id"], "booking.cancelled")
    token = await salon.tenant.session_token()
    assert (await salon.hold(token, tomorrow_at(10), salon.deposit_service_id)).status == 201


async def test_an_expired_checkout_says_the_platform_cancelled_it(
    salon: Salon, local_stripe: LocalStripeControl, tap: EventTap
) -> None:
    booking = await deposit_booking(salon)
    await local_stripe.expire(booking["payment"]["checkout_session_id"])
    cancelled = await wait_for_status(salon, booking["id"], "cancelled")
    assert cancelled["cancelled_by"] == "system"
    event = await tap.wait_for(booking["id"], "booking.cancelled")
    assert event["data"]["cancelled_by"] == "system"


async def test_a_pending_booking_keeps_its_slot(salon: Salon) -> None:
    await deposit_booking(salon)
    token = await salon.tenant.session_token()
    assert (await salon.hold(token, tomorrow_at(10), salon.deposit_service_id)).status == 409


async def test_the_same_stripe_event_twice_is_processed_once(
    salon: Salon, api: Api, local_stripe: LocalStripeControl, tap: EventTap
) -> None:
    booking = await deposit_booking(salon)
    session = await local_stripe.checkout_session(booking["payment"]["checkout_session_id"])
    session |= {"status": "complete", "payment_status": "paid"}
    body, signature = local_stripe.signed(
        checkout_event(
            "evt_test_duplicate_" + booking["id"][:8], "checkout.session.completed", session
        )
    )
    for _ in range(2):
        answer = await api.post(
            "/webhooks/stripe",
            data=body,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )
        assert answer.status == 200
    await tap.wait_for(booking["id"], "booking.confirmed")
    await asyncio.sleep(0.5)
    await tap.drain()
    assert tap.of(booking["id"]) == ["booking.created", "booking.confirmed"]


async def test_an_expiry_arriving_after_payment_changes_nothing(
    salon: Salon, api: Api, local_stripe: LocalStripeControl
) -> None:
    booking = await deposit_booking(salon)
    await local_stripe.pay(booking["redirect_url"])
    await wait_for_status(salon, booking["id"], "confirmed")
    session = await local_stripe.checkout_session(booking["payment"]["checkout_session_id"])
    body, signature = local_stripe.signed(
        checkout_event(
            "evt_test_late_expiry", "checkout.session.expired", session | {"status": "expired"}
        )
    )
    answer = await api.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": signature})
    assert answer.status == 200
    assert (await wait_for_status(salon, booking["id"], "confirmed"))["payment"]["status"] == "paid"


@pytest.mark.parametrize("signature", ["forged", "missing"])
async def test_a_webhook_without_a_valid_signature_is_400_and_changes_nothing(
    salon: Salon, api: Api, local_stripe: LocalStripeControl, signature: str
) -> None:
    booking = await deposit_booking(salon)
    session = await local_stripe.checkout_session(booking["payment"]["checkout_session_id"])
    body, good = local_stripe.signed(
        checkout_event(
            "evt_test_forged",
            "checkout.session.completed",
            session | {"status": "complete", "payment_status": "paid"},
        ),
        secret="whsec_not_the_real_one",
    )
    headers = {"Stripe-Signature": good} if signature == "forged" else {}
    answer = await api.post("/webhooks/stripe", data=body, headers=headers)
    assert answer.status == 400
    assert answer.content_type == "application/problem+json"
    await asyncio.sleep(0.3)
    assert (await wait_for_status(salon, booking["id"], "pending"))["payment"]["status"] == (
        "requires_payment"
    )


async def test_stripe_down_answers_503_keeps_the_hold_and_writes_nothing(
    salon: Salon, local_stripe: LocalStripeControl
) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(11), salon.deposit_service_id))
    await local_stripe.mode("down")
    failed = await salon.book(token, hold["hold_id"])
    assert failed.status == 503
    assert failed.content_type == "application/problem+json"
    listed = await salon.tenant.api.get("/api/v1/bookings", salon.tenant.business_key)
    assert listed.body["data"] == []
    await local_stripe.mode("up")
    retried = await salon.book(token, hold["hold_id"])
    assert retried.status == 201
    assert retried.body["status"] == "pending"


async def test_stripe_too_slow_answers_503_and_keeps_the_hold(
    salon: Salon, local_stripe: LocalStripeControl
) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(12), salon.deposit_service_id))
    await local_stripe.mode("slow")
    failed = await salon.book(token, hold["hold_id"])
    await local_stripe.mode("up")
    assert failed.status == 503
    assert (await salon.book(token, hold["hold_id"])).status == 201


async def test_no_deposit_means_no_stripe_call(
    salon: Salon, local_stripe: LocalStripeControl
) -> None:
    before = await local_stripe.calls()
    booking = await salon.booking(tomorrow_at(13))
    assert booking["status"] == "confirmed"
    assert booking["payment"] is None and booking["redirect_url"] is None
    assert await local_stripe.calls() == before


async def test_a_deposit_added_to_a_service_is_asked_of_its_next_booking(
    salon: Salon, local_stripe: LocalStripeControl
) -> None:
    assert (await salon.booking(tomorrow_at(13)))["status"] == "confirmed"
    await ask_deposit(salon, salon.service_id, 1000)
    before = await local_stripe.calls()
    booking = await salon.booking(tomorrow_at(14))
    assert booking["status"] == "pending"
    assert booking["payment"]["amount"] == 1000
    assert booking["redirect_url"]
    assert await local_stripe.calls() == before + 1


async def test_a_deposit_taken_off_a_service_is_no_longer_asked(
    salon: Salon, local_stripe: LocalStripeControl
) -> None:
    assert (await deposit_booking(salon))["status"] == "pending"
    await ask_deposit(salon, salon.deposit_service_id, 0)
    before = await local_stripe.calls()
    booking = await salon.booking(tomorrow_at(13), salon.deposit_service_id)
    assert booking["status"] == "confirmed"
    assert booking["payment"] is None and booking["redirect_url"] is None
    assert await local_stripe.calls() == before


async def test_the_sweeper_cancels_an_unpaid_booking_whose_checkout_expired(
    salon: Salon, stack: LocalStack, local_stripe: LocalStripeControl
) -> None:
    booking = await deposit_booking(salon)
    session_id = booking["payment"]["checkout_session_id"]
    # Stripe let the session lapse but its webhook never came.
    await local_stripe.lapse(session_id)
    connection = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        await connection.execute(
            "UPDATE payments SET expires_at = now() - interval '1 second' "
            "WHERE checkout_session_id = $1",
            session_id,
        )
    finally:
        await connection.close()
    cancelled = await wait_for_status(salon, booking["id"], "cancelled")
    assert cancelled["payment"]["status"] == "expired"
    token = await salon.tenant.session_token()
    assert (await salon.hold(token, tomorrow_at(10), salon.deposit_service_id)).status == 201


async def test_cancelling_a_pending_booking_closes_its_checkout(
    salon: Salon, local_stripe: LocalStripeControl
) -> None:
    booking = await deposit_booking(salon)
    answer = await salon.tenant.api.delete(
        f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key
    )
    assert answer.status == 200
    assert answer.body["payment"]["status"] == "expired"
    assert answer.body["redirect_url"] is None
    session = await local_stripe.checkout_session(booking["payment"]["checkout_session_id"])
    assert session["status"] == "expired"
