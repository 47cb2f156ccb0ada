"""Signed webhooks for no-shows, and for cancellations with their reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from calendence.devstack.stack import LocalStack

from tests.api import tomorrow_at
from tests.booking_helpers import Salon
from tests.catalogue_helpers import database, insert_booking
from tests.webhook_receiver import (
    WebhookReceiver,
    allow_private_targets,
    create_endpoint,
    of_booking,
)


@pytest.fixture(autouse=True, scope="module")
def _receivers_on_localhost(stack: LocalStack) -> None:
    allow_private_targets(stack)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


async def test_a_no_show_is_delivered_as_booking_no_show(
    stack: LocalStack, salon: Salon, receiver: WebhookReceiver
) -> None:
    endpoint = await create_endpoint(salon.tenant, receiver.url(), events=["booking.no_show"])
    async with database(stack) as connection:
        booking_id = await insert_booking(
            connection,
            salon.tenant,
            location_id=salon.location_id,
            service_id=salon.service_id,
            starts_in=-timedelta(minutes=15),
        )
    answer = await salon.tenant.api.patch(
        f"/api/v1/bookings/{booking_id}", salon.tenant.business_key, {"status": "no_show"}
    )
    assert answer.status == 200, answer.body
    (webhook,) = await receiver.wait_for(of_booking(str(booking_id), "booking.no_show"))
    document = webhook.verify(endpoint["secret"])
    assert document["type"] == "booking.no_show"
    assert document["data"]["status"] == "no_show"


async def test_booking_cancelled_carries_the_reason_and_who_cancelled(
    salon: Salon, receiver: WebhookReceiver
) -> None:
    endpoint = await create_endpoint(salon.tenant, receiver.url(), events=["booking.cancelled"])
    booking = await salon.booking(tomorrow_at(10))
    answer = await salon.tenant.api.delete(
        f"/api/v1/bookings/{booking['id']}",
        salon.tenant.business_key,
        json={"cancellation_reason": "Stylist is ill"},
    )
    assert answer.status == 200, answer.body
    (webhook,) = await receiver.wait_for(of_booking(booking["id"], "booking.cancelled"))
    data = webhook.verify(endpoint["secret"])["data"]
    assert data["cancellation_reason"] == "Stylist is ill"
    assert data["cancelled_by"] == "business"
