"""Bookings made from holds: create, show, update, cancel, list (the Bookings page)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from calendence.devstack.stack import LocalStack

from tests.api import Api, created, new_tenant, tomorrow_at
from tests.booking_helpers import JANE, Salon
from tests.redis_helpers import claim_lifetimes, stack_redis


async def test_page_examples_in_order_give_a_confirmed_booking(salon: Salon) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(14)))
    answer = await salon.book(token, hold["hold_id"], notes="Please use the side entrance")
    assert answer.status == 201
    booking = answer.body
    assert booking["status"] == "confirmed"
    assert booking["starts_at"] == hold["starts_at"]
    assert booking["ends_at"] == hold["ends_at"]
    assert booking["service"]["id"] == salon.service_id
    assert booking["location"]["id"] == salon.location_id
    assert booking["staff"] is None
    assert booking["client"] == JANE
    assert booking["notes"] == "Please use the side entrance"
    assert booking["custom_field_values"] == []
    assert booking["cancelled_at"] is None
    assert {"id", "created_at", "updated_at"} <= booking.keys()


async def test_booking_shows_with_nested_details_for_every_key_kind(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    tenant = salon.tenant
    for key in (await tenant.session_token(), tenant.business_key):
        shown = await tenant.api.get(f"/api/v1/bookings/{booking['id']}", key)
        assert shown.status == 200
        assert shown.body == booking
    by_hub = await tenant.api.get(
        f"/api/v1/bookings/{booking['id']}",
        tenant.hub_key,
        headers={"Calendence-Business": tenant.business_id},
    )
    assert by_hub.status == 200


async def test_concurrent_bookings_of_one_hold_make_exactly_one_booking(salon: Salon) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(11)))
    answers = await asyncio.gather(*(salon.book(token, hold["hold_id"]) for _ in range(25)))
    statuses = sorted(a.status for a in answers)
    assert statuses.count(201) == 1
    assert statuses.count(404) == 24
    listed = await salon.tenant.api.get("/api/v1/bookings", salon.tenant.business_key)
    assert len(listed.body["data"]) == 1


async def test_a_booked_slots_claim_soon_lasts_until_the_booking_ends(
    stack: LocalStack, salon: Salon
) -> None:
    await salon.booking(tomorrow_at(15))
    # The answer does not wait for the claim's confirmation; it follows at once.
    until_it_ends = (tomorrow_at(15, 30) - datetime.now(UTC)).total_seconds() * 1000
    deadline = time.monotonic() + 5
    while True:
        lifetimes = await claim_lifetimes(stack, salon.location_id, salon.service_id)
        if (lifetimes and min(lifetimes) > until_it_ends - 60_000) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert lifetimes
    assert all(ttl > until_it_ends - 60_000 for ttl in lifetimes), lifetimes


async def test_a_used_hold_answers_404(salon: Salon) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(12)))
    created(await salon.book(token, hold["hold_id"]))
    again = await salon.book(token, hold["hold_id"])
    assert again.status == 404
    assert again.content_type == "application/problem+json"


async def test_a_released_hold_answers_404(salon: Salon) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(12)))
    released = await salon.tenant.api.delete(f"/api/v1/bookings/hold/{hold['hold_id']}", token)
    assert released.status == 204
    assert (await salon.book(token, hold["hold_id"])).status == 404


async def test_an_unknown_hold_answers_404(salon: Salon) -> None:
    token = await salon.tenant.session_token()
    answer = await salon.book(token, "6f0c4d8e-0000-4000-8000-000000000000")
    assert answer.status == 404


async def test_a_hold_of_another_business_answers_404(
    salon: Salon, api: Api, hub: dict[str, str]
) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(13)))
    stranger = await new_tenant(api, hub["key"])
    answer = await api.post(
        "/api/v1/bookings",
        await stranger.session_token(),
        {"hold_id": hold["hold_id"], "client": JANE},
    )
    assert answer.status == 404
    # ...and the hold is still its owner's to use.
    assert (await salon.book(token, hold["hold_id"])).status == 201


async def test_invalid_client_fields_answer_422_per_field_and_keep_the_hold(
    salon: Salon,
) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(15)))
    answer = await salon.tenant.api.post(
        "/api/v1/bookings",
        token,
        {
            "hold_id": hold["hold_id"],
            "client": {"first_name": "", "email": "not-an-email", "phone": "555-1234"},
            "notes": "x" * 1001,
        },
    )
    assert answer.status == 422
    assert set(answer.body["errors"]) == {
        "client.first_name",
        "client.last_name",
        "client.email",
        "client.phone",
        "notes",
    }
    assert (await salon.book(token, hold["hold_id"])).status == 201


async def test_notes_of_exactly_1000_characters_are_accepted(salon: Salon) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(15)))
    answer = await salon.book(token, hold["hold_id"], notes="x" * 1000)
    assert answer.status == 201


async def test_custom_field_values_are_checked_against_the_business_fields(salon: Salon) -> None:
    tenant = salon.tenant
    await tenant.create(
        "custom-fields",
        {"key": "allergies", "label": "Allergies", "type": "text", "required": True},
    )
    await tenant.create(
        "custom-fields",
        {"key": "length", "label": "Hair length", "type": "select", "options": ["short", "long"]},
    )
    await tenant.create("custom-fields", {"key": "age", "label": "Age", "type": "number"})
    token = await tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(10)))
    wrong = await salon.book(
        token,
        hold["hold_id"],
        custom_field_values=[
            {"key": "length", "value": "medium"},
            {"key": "age", "value": "forty"},
            {"key": "colour", "value": "red"},
        ],
    )
    assert wrong.status == 422
    assert set(wrong.body["errors"]) == {
        "custom_field_values.0.value",
        "custom_field_values.1.value",
        "custom_field_values.2.key",
        "custom_field_values.allergies",
    }
    right = await salon.book(
        token,
        hold["hold_id"],
        custom_field_values=[
            {"key": "allergies", "value": "none"},
            {"key": "length", "value": "long"},
            {"key": "age", "value": 40},
        ],
    )
    assert right.status == 201
    assert right.body["custom_field_values"] == [
        {"key": "allergies", "value": "none"},
        {"key": "length", "value": "long"},
        {"key": "age", "value": 40},
    ]


async def test_a_custom_field_added_since_the_last_booking_is_required_of_the_next(
    salon: Salon,
) -> None:
    await salon.booking(tomorrow_at(9))
    await salon.tenant.create(
        "custom-fields",
        {"key": "allergies", "label": "Allergies", "type": "text", "required": True},
    )
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(10)))
    unanswered = await salon.book(token, hold["hold_id"])
    assert unanswered.status == 422
    assert set(unanswered.body["errors"]) == {"custom_field_values.allergies"}
    answered = await salon.book(
        token, hold["hold_id"], custom_field_values=[{"key": "allergies", "value": "none"}]
    )
    assert answered.status == 201, answered.body


async def test_a_custom_field_deleted_since_the_last_booking_is_no_longer_asked(
    salon: Salon,
) -> None:
    field = await salon.tenant.create(
        "custom-fields",
        {"key": "allergies", "label": "Allergies", "type": "text", "required": True},
    )
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(9)))
    answer = [{"key": "allergies", "value": "none"}]
    assert (await salon.book(token, hold["hold_id"], custom_field_values=answer)).status == 201
    deleted = await salon.tenant.api.delete(
        f"/api/v1/custom-fields/{field['id']}", salon.tenant.business_key
    )
    assert deleted.status == 204
    assert (await salon.booking(tomorrow_at(10)))["custom_field_values"] == []


async def test_a_service_with_a_deposit_makes_a_pending_booking(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10), salon.deposit_service_id)
    assert booking["status"] == "pending"


async def test_session_token_cannot_update_cancel_or_list(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(11))
    token = await salon.tenant.session_token()
    api = salon.tenant.api
    path = f"/api/v1/bookings/{booking['id']}"
    assert (await api.patch(path, token, {"notes": "x"})).status == 403
    assert (await api.delete(path, token)).status == 403
    assert (await api.get("/api/v1/bookings", token)).status == 403
    assert (await api.get(path, salon.tenant.business_key)).body["status"] == "confirmed"


async def test_another_business_sees_no_booking_of_ours(
    salon: Salon, api: Api, hub: dict[str, str]
) -> None:
    booking = await salon.booking(tomorrow_at(12))
    stranger = await new_tenant(api, hub["key"])
    path = f"/api/v1/bookings/{booking['id']}"
    assert (await api.get(path, stranger.business_key)).status == 404
    assert (await api.get(path, await stranger.session_token())).status == 404
    assert (await api.patch(path, stranger.business_key, {"notes": "x"})).status == 404
    assert (await api.delete(path, stranger.business_key)).status == 404
    assert (await api.get(path, salon.tenant.business_key)).body["status"] == "confirmed"


async def test_delete_cancels_records_cancelled_at_and_frees_the_slot(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(13))
    token = await salon.tenant.session_token()
    assert (await salon.hold(token, tomorrow_at(13))).status == 409
    answer = await salon.tenant.api.delete(
        f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key
    )
    assert answer.status == 200
    assert answer.body["status"] == "cancelled"
    assert answer.body["cancelled_at"] is not None
    assert (await salon.hold(token, tomorrow_at(13))).status == 201


async def test_delete_is_idempotent(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(14))
    path = f"/api/v1/bookings/{booking['id']}"
    first = await salon.tenant.api.delete(path, salon.tenant.business_key)
    second = await salon.tenant.api.delete(path, salon.tenant.business_key)
    assert second.status == 200
    assert second.body == first.body


@pytest.mark.parametrize(
    ("path", "service"),
    [
        (["in_progress", "completed"], "plain"),
        (["cancelled"], "plain"),
        (["in_progress", "cancelled"], "plain"),
        (["confirmed", "in_progress", "completed"], "deposit"),
        (["confirmed", "cancelled"], "deposit"),
        (["confirmed", "in_progress", "cancelled"], "deposit"),
        (["cancelled"], "deposit"),
    ],
)
async def test_legal_status_transitions_are_accepted(
    salon: Salon, path: list[str], service: str
) -> None:
    service_id = salon.deposit_service_id if service == "deposit" else salon.service_id
    booking = await salon.booking(tomorrow_at(10), service_id)
    for status in path:
        answer = await salon.tenant.api.patch(
            f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key, {"status": status}
        )
        assert answer.status == 200, (status, answer.body)
        assert answer.body["status"] == status


@pytest.mark.parametrize(
    ("before", "wanted"),
    [
        (["confirmed", "in_progress", "completed"], "cancelled"),
        (["confirmed", "in_progress", "completed"], "confirmed"),
        (["cancelled"], "confirmed"),
        (["cancelled"], "in_progress"),
        ([], "pending"),
        ([], "completed"),
        (["confirmed", "in_progress"], "confirmed"),
    ],
)
async def test_illegal_status_transitions_answer_409_with_the_reason(
    salon: Salon, before: list[str], wanted: str
) -> None:
    booking = await salon.booking(tomorrow_at(11), salon.deposit_service_id)
    path = f"/api/v1/bookings/{booking['id']}"
    for status in before:
        assert (
            await salon.tenant.api.patch(path, salon.tenant.business_key, {"status": status})
        ).status == 200
    answer = await salon.tenant.api.patch(path, salon.tenant.business_key, {"status": wanted})
    assert answer.status == 409
    assert answer.body["detail"].startswith(("a ", "the booking is"))
    after = await salon.tenant.api.get(path, salon.tenant.business_key)
    assert after.body["status"] == (before[-1] if before else "pending")


async def test_an_unknown_status_is_422(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(11))
    answer = await salon.tenant.api.patch(
        f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key, {"status": "done"}
    )
    assert answer.status == 422
    assert "status" in answer.body["errors"]


async def test_reschedule_moves_the_booking_and_frees_the_old_slot(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    answer = await salon.tenant.api.patch(
        f"/api/v1/bookings/{booking['id']}",
        salon.tenant.business_key,
        {"starts_at": tomorrow_at(12).isoformat()},
    )
    assert answer.status == 200
    assert answer.body["starts_at"] == tomorrow_at(12).isoformat()
    assert answer.body["ends_at"] == (tomorrow_at(12) + timedelta(minutes=30)).isoformat()
    token = await salon.tenant.session_token()
    assert (await salon.hold(token, tomorrow_at(10))).status == 201
    assert (await salon.hold(token, tomorrow_at(12))).status == 409


async def test_reschedule_onto_another_booking_answers_409(salon: Salon) -> None:
    first = await salon.booking(tomorrow_at(10))
    await salon.booking(tomorrow_at(11))
    answer = await salon.tenant.api.patch(
        f"/api/v1/bookings/{first['id']}",
        salon.tenant.business_key,
        {"starts_at": tomorrow_at(11, 15).isoformat()},
    )
    assert answer.status == 409
    unchanged = await salon.tenant.api.get(
        f"/api/v1/bookings/{first['id']}", salon.tenant.business_key
    )
    assert unchanged.body["starts_at"] == tomorrow_at(10).isoformat()
    token = await salon.tenant.session_token()
    assert (await salon.hold(token, tomorrow_at(10))).status == 409


async def test_reschedule_onto_a_held_slot_answers_409(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    token = await salon.tenant.session_token()
    created(await salon.hold(token, tomorrow_at(14)))
    answer = await salon.tenant.api.patch(
        f"/api/v1/bookings/{booking['id']}",
        salon.tenant.business_key,
        {"starts_at": tomorrow_at(14).isoformat()},
    )
    assert answer.status == 409


async def test_reschedule_outside_opening_hours_answers_422(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    answer = await salon.tenant.api.patch(
        f"/api/v1/bookings/{booking['id']}",
        salon.tenant.business_key,
        {"starts_at": tomorrow_at(22).isoformat()},
    )
    assert answer.status == 422
    assert "starts_at" in answer.body["errors"]


async def test_notes_can_be_edited(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    answer = await salon.tenant.api.patch(
        f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key, {"notes": "Running late"}
    )
    assert answer.status == 200
    assert answer.body["notes"] == "Running late"
    assert answer.body["status"] == "confirmed"


async def test_list_filters_by_status_service_and_date_range(salon: Salon) -> None:
    tenant = salon.tenant
    early = await salon.booking(tomorrow_at(10))
    late = await salon.booking(tomorrow_at(14))
    deposit = await salon.booking(tomorrow_at(12), salon.deposit_service_id)
    await tenant.api.delete(f"/api/v1/bookings/{early['id']}", tenant.business_key)

    async def ids(**params: str) -> set[str]:
        answer = await tenant.api.get("/api/v1/bookings", tenant.business_key, params=params)
        assert answer.status == 200, answer.body
        return {b["id"] for b in answer.body["data"]}

    assert await ids() == {early["id"], late["id"], deposit["id"]}
    assert await ids(status="cancelled") == {early["id"]}
    assert await ids(service_id=salon.deposit_service_id) == {deposit["id"]}
    assert await ids(
        **{"from": tomorrow_at(11).isoformat(), "to": tomorrow_at(13).isoformat()}
    ) == {deposit["id"]}
    assert await ids(client_email="JANE@example.com") == {early["id"], late["id"], deposit["id"]}
    assert await ids(location_id=salon.location_id, status="confirmed") == {late["id"]}


async def test_list_rejects_unknown_filters_with_422(salon: Salon) -> None:
    answer = await salon.tenant.api.get(
        "/api/v1/bookings", salon.tenant.business_key, params={"colour": "red"}
    )
    assert answer.status == 422
    assert answer.body["errors"] == {"colour": "unknown field"}


async def test_list_pages_return_every_booking_once(salon: Salon) -> None:
    made = {
        (await salon.booking(tomorrow_at(9) + timedelta(minutes=30 * i)))["id"] for i in range(5)
    }
    seen: list[str] = []
    cursor = ""
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await salon.tenant.api.get(
            "/api/v1/bookings", salon.tenant.business_key, params=params
        )
        seen += [b["id"] for b in page.body["data"]]
        if not page.body["has_more"]:
            break
        cursor = page.body["next_cursor"]
    assert sorted(seen) == sorted(made)


async def test_a_hold_on_a_service_deleted_since_cannot_be_booked(salon: Salon) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(16)))
    deleted = await salon.tenant.api.delete(
        f"/api/v1/services/{salon.service_id}", salon.tenant.business_key
    )
    assert deleted.status == 204
    answer = await salon.book(token, hold["hold_id"])
    assert answer.status == 409
    listed = await salon.tenant.api.get("/api/v1/bookings", salon.tenant.business_key)
    assert listed.body["data"] == []


async def test_a_hold_at_a_location_deleted_since_cannot_be_booked(salon: Salon) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(16)))
    deleted = await salon.tenant.api.delete(
        f"/api/v1/locations/{salon.location_id}", salon.tenant.business_key
    )
    assert deleted.status == 204
    answer = await salon.book(token, hold["hold_id"])
    assert answer.status == 409
    listed = await salon.tenant.api.get("/api/v1/bookings", salon.tenant.business_key)
    assert listed.body["data"] == []


async def test_postgres_refuses_a_double_booking_when_redis_lost_the_hold(
    salon: Salon, stack: LocalStack
) -> None:
    first_token = await salon.tenant.session_token()
    first = created(await salon.hold(first_token, tomorrow_at(15)))
    # Redis loses the claim (a failover, an eviction): nothing there stops a second hold.
    async with stack_redis(stack) as redis:
        resource = f"svc:{salon.location_id}:{salon.service_id}"
        lost = [key async for key in redis.scan_iter(match=f"cal:{{r:{resource}}}:g:*")]
        assert lost
        await redis.delete(*lost)
    second_token = await salon.tenant.session_token()
    second = created(await salon.hold(second_token, tomorrow_at(15)))
    answers = await asyncio.gather(
        salon.book(first_token, first["hold_id"]), salon.book(second_token, second["hold_id"])
    )
    assert sorted(a.status for a in answers) == [201, 409]
    listed = await salon.tenant.api.get("/api/v1/bookings", salon.tenant.business_key)
    assert len(listed.body["data"]) == 1
