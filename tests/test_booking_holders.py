"""Who may book a hold: the session that placed it, or a key of its business."""

from __future__ import annotations

from tests.api import Api, created, tomorrow_at
from tests.booking_helpers import Salon
from tests.hold_helpers import assert_problem


async def test_another_session_of_the_business_booking_a_hold_gets_404(salon: Salon) -> None:
    mine, theirs = salon.tenant.session_token(), salon.tenant.session_token()
    owner, other = await mine, await theirs
    hold = created(await salon.hold(owner, tomorrow_at(10)))
    assert_problem(await salon.book(other, hold["hold_id"]), 404)
    listed = await salon.tenant.api.get("/api/v1/bookings", salon.tenant.business_key)
    assert listed.body["data"] == []


async def test_a_hold_refused_to_another_session_stays_bookable_by_its_own(salon: Salon) -> None:
    owner, other = await salon.tenant.session_token(), await salon.tenant.session_token()
    hold = created(await salon.hold(owner, tomorrow_at(11)))
    assert (await salon.book(other, hold["hold_id"])).status == 404
    booking = created(await salon.book(owner, hold["hold_id"]))
    assert booking["hold_id"] == hold["hold_id"]


async def test_the_business_key_may_book_a_sessions_hold(salon: Salon) -> None:
    hold = created(await salon.hold(await salon.tenant.session_token(), tomorrow_at(12)))
    booking = created(await salon.book(salon.tenant.business_key, hold["hold_id"]))
    assert booking["hold_id"] == hold["hold_id"]


async def test_the_hub_key_may_book_a_hold_of_its_business(api: Api, salon: Salon) -> None:
    hold = created(await salon.hold(await salon.tenant.session_token(), tomorrow_at(13)))
    booked = await api.post(
        "/api/v1/bookings",
        salon.tenant.hub_key,
        {
            "hold_id": hold["hold_id"],
            "client": {"first_name": "Jo", "last_name": "Roe", "email": "jo@example.com"},
        },
        headers={"Calendence-Business": salon.tenant.business_id},
    )
    assert created(booked)["hold_id"] == hold["hold_id"]
