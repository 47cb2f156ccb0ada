"""No-shows, and why and by whom a booking was cancelled."""

from __future__ import annotations

import uuid
from datetime import timedelta

from calendence.devstack.stack import LocalStack

from tests.api import Tenant, created, tomorrow_at
from tests.booking_helpers import Salon
from tests.catalogue_helpers import database, insert_booking, problem
from tests.events import EventTap


def path(booking_id: object) -> str:
    return f"/api/v1/bookings/{booking_id}"


async def started_booking(stack: LocalStack, salon: Salon, status: str = "confirmed") -> uuid.UUID:
    """A booking whose start time has passed (made in the database: holds must be ahead)."""
    async with database(stack) as connection:
        return await insert_booking(
            connection,
            salon.tenant,
            location_id=salon.location_id,
            service_id=salon.service_id,
            status=status,
            starts_in=-timedelta(minutes=20),
        )


async def test_a_confirmed_booking_whose_start_passed_becomes_a_no_show(
    stack: LocalStack, salon: Salon, tap: EventTap
) -> None:
    booking_id = await started_booking(stack, salon)
    answer = await salon.tenant.api.patch(
        path(booking_id), salon.tenant.business_key, {"status": "no_show"}
    )
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "no_show"
    event = await tap.wait_for(str(booking_id), "booking.no_show")
    assert event["data"]["status"] == "no_show"


async def test_a_pending_booking_whose_start_passed_becomes_a_no_show(
    stack: LocalStack, salon: Salon
) -> None:
    booking_id = await started_booking(stack, salon, status="pending")
    answer = await salon.tenant.api.patch(
        path(booking_id), salon.tenant.business_key, {"status": "no_show"}
    )
    assert answer.status == 200, answer.body


async def test_a_no_show_before_the_start_is_409(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    answer = await salon.tenant.api.patch(
        path(booking["id"]), salon.tenant.business_key, {"status": "no_show"}
    )
    assert "start" in problem(answer, 409)["detail"]


async def test_a_no_show_is_final(stack: LocalStack, salon: Salon) -> None:
    booking_id = await started_booking(stack, salon)
    key = salon.tenant.business_key
    await salon.tenant.api.patch(path(booking_id), key, {"status": "no_show"})
    problem(await salon.tenant.api.patch(path(booking_id), key, {"status": "confirmed"}), 409)
    problem(await salon.tenant.api.delete(path(booking_id), key), 409)


async def test_an_in_progress_booking_cannot_become_a_no_show(
    stack: LocalStack, salon: Salon
) -> None:
    booking_id = await started_booking(stack, salon, status="in_progress")
    answer = await salon.tenant.api.patch(
        path(booking_id), salon.tenant.business_key, {"status": "no_show"}
    )
    problem(answer, 409)


async def test_delete_with_a_reason_records_it_and_the_business_as_canceller(
    salon: Salon, tap: EventTap
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    answer = await salon.tenant.api.delete(
        path(booking["id"]),
        salon.tenant.business_key,
        json={"cancellation_reason": "Stylist is ill"},
    )
    assert answer.status == 200, answer.body
    assert answer.body["cancellation_reason"] == "Stylist is ill"
    assert answer.body["cancelled_by"] == "business"
    event = await tap.wait_for(booking["id"], "booking.cancelled")
    assert event["data"]["cancellation_reason"] == "Stylist is ill"
    assert event["data"]["cancelled_by"] == "business"


async def test_delete_without_a_body_cancels_with_no_reason(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    answer = await salon.tenant.api.delete(path(booking["id"]), salon.tenant.business_key)
    assert answer.body["status"] == "cancelled"
    assert answer.body["cancellation_reason"] is None
    assert answer.body["cancelled_by"] == "business"


async def test_patch_to_cancelled_takes_a_reason(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    answer = await salon.tenant.api.patch(
        path(booking["id"]),
        salon.tenant.business_key,
        {"status": "cancelled", "cancellation_reason": "Client phoned"},
    )
    assert answer.status == 200, answer.body
    assert answer.body["cancellation_reason"] == "Client phoned"


async def test_a_reason_without_cancelling_is_422(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    answer = await salon.tenant.api.patch(
        path(booking["id"]), salon.tenant.business_key, {"cancellation_reason": "why"}
    )
    assert "cancellation_reason" in problem(answer, 422)["errors"]


async def test_a_reason_over_500_characters_is_422(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    key = salon.tenant.business_key
    too_long = {"cancellation_reason": "x" * 501}
    problem(await salon.tenant.api.delete(path(booking["id"]), key, json=too_long), 422)
    shown = await salon.tenant.api.get(path(booking["id"]), key)
    assert shown.body["status"] == "confirmed"
    longest = {"cancellation_reason": "x" * 500}
    assert (await salon.tenant.api.delete(path(booking["id"]), key, json=longest)).status == 200


async def test_webhook_endpoints_may_subscribe_to_no_shows(tenant: Tenant) -> None:
    endpoint = created(
        await tenant.api.post(
            "/api/v1/webhook-endpoints",
            tenant.business_key,
            {"url": "https://hooks.example.com/calendence", "events": ["booking.no_show"]},
        )
    )
    assert endpoint["events"] == ["booking.no_show"]
