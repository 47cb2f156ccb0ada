"""Clients manage their own booking through its manage link: see it, move it, cancel it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from booking_service.manage_links import ManageLinks
from booking_service.manage_repository import ManageRepository
from calendence.devstack.stack import LocalStack
from calendence.errors import NotFound
from calendence.migrations import migrate
from calendence.storage import open_pool

from tests.api import Api, Tenant, iso, new_tenant, tomorrow_at
from tests.booking_helpers import Salon, open_salon
from tests.events import EventTap
from tests.manage_helpers import managed, token_of
from tests.test_keys import replica
from tests.webhook_receiver import (
    WebhookReceiver,
    allow_private_targets,
    create_endpoint,
    of_booking,
)


async def test_every_booking_answer_carries_a_manage_url_on_the_public_base_url(
    salon: Salon, stack: LocalStack
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    tenant = salon.tenant
    assert booking["manage_url"].startswith(f"{stack.gateway_url}/manage/")
    shown = await tenant.api.get(f"/api/v1/bookings/{booking['id']}", tenant.business_key)
    listed = await tenant.api.get("/api/v1/bookings", tenant.business_key)
    assert shown.body["manage_url"] == booking["manage_url"]
    assert [b["manage_url"] for b in listed.body["data"]] == [booking["manage_url"]]


async def test_webhooks_carry_the_manage_url(
    salon: Salon, stack: LocalStack, tmp_path: Path
) -> None:
    allow_private_targets(stack)
    async with WebhookReceiver() as receiver:
        await create_endpoint(salon.tenant, receiver.url())
        booking = await salon.booking(tomorrow_at(11))
        (webhook,) = await receiver.wait_for(of_booking(booking["id"], "booking.created"))
    assert webhook.json["data"]["manage_url"] == booking["manage_url"]


async def test_the_business_hears_of_the_clients_move_and_cancel_by_webhook(
    salon: Salon, stack: LocalStack
) -> None:
    allow_private_targets(stack)
    async with WebhookReceiver() as receiver:
        await create_endpoint(salon.tenant, receiver.url())
        booking = await salon.booking(tomorrow_at(11))
        later = {"starts_at": iso(tomorrow_at(15))}
        assert (await managed(salon.tenant.api, booking, "reschedule", json=later)).status == 200
        assert (await managed(salon.tenant.api, booking, "cancel", json={})).status == 200
        (moved,) = await receiver.wait_for(of_booking(booking["id"], "booking.rescheduled"))
        (cancelled,) = await receiver.wait_for(of_booking(booking["id"], "booking.cancelled"))
    assert moved.json["data"]["actor"] == "client"
    assert moved.json["data"]["starts_at"] == iso(tomorrow_at(15))
    assert cancelled.json["data"]["cancelled_by"] == "client"
    assert cancelled.json["data"]["manage_url"] is None


async def test_the_token_is_long_and_differs_per_booking(salon: Salon) -> None:
    first = await salon.booking(tomorrow_at(10))
    second = await salon.booking(tomorrow_at(11))
    tokens = {token_of(first), token_of(second)}
    assert len(tokens) == 2
    # 36 bytes base64url: a key id, the booking id and a 144-bit signature.
    assert all(len(token) == 48 for token in tokens)


async def test_the_manage_route_shows_the_booking_without_business_internals(
    salon: Salon,
) -> None:
    booking = await salon.booking(tomorrow_at(12))
    answer = await managed(salon.tenant.api, booking)
    assert answer.status == 200
    view = answer.body
    assert view["object"] == "managed_booking"
    assert view["id"] == booking["id"]
    assert view["starts_at"] == booking["starts_at"]
    assert view["location"]["timezone"] == "Europe/London"
    assert view["client"] == booking["client"]
    assert view["can_cancel"] and view["can_reschedule"]
    for internal in ("notes", "custom_field_values", "business_id", "hold_id"):
        assert internal not in view


async def test_a_token_with_a_changed_signature_or_booking_opens_nothing(
    salon: Salon, tenant: Tenant
) -> None:
    booking = await salon.booking(tomorrow_at(13))
    token = token_of(booking)
    flipped = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for wrong in (flipped, token[:40], "x" * 48, token + "A"):
        answer = await salon.tenant.api.get(f"/api/v1/manage/{wrong}")
        assert answer.status == 404, wrong
    # Not an API key either.
    as_key = await salon.tenant.api.get(f"/api/v1/bookings/{booking['id']}", token)
    assert as_key.status == 401


async def test_moving_claims_the_new_time_and_frees_the_old_one(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    api = salon.tenant.api
    free = await managed(api, booking, "availability")
    assert free.status == 200
    starts = [datetime.fromisoformat(s["starts_at"]) for s in free.body["slots"]]
    target = tomorrow_at(14)
    assert target in starts and tomorrow_at(10) not in starts
    moved = await managed(api, booking, "reschedule", json={"starts_at": iso(target)})
    assert moved.status == 200, moved.body
    assert datetime.fromisoformat(moved.body["starts_at"]) == target
    # The old slot is free again, the new one is taken.
    token = await salon.tenant.session_token()
    assert (await salon.hold(token, tomorrow_at(10))).status == 201
    assert (await salon.hold(token, target)).status == 409


async def test_moving_to_a_taken_time_is_409_and_leaves_the_booking_where_it_was(
    salon: Salon,
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    await salon.booking(tomorrow_at(15))
    answer = await managed(
        salon.tenant.api, booking, "reschedule", json={"starts_at": iso(tomorrow_at(15))}
    )
    assert answer.status == 409
    shown = await managed(salon.tenant.api, booking)
    assert shown.body["starts_at"] == booking["starts_at"]
    # Its own slot is still held: nobody else can take it.
    token = await salon.tenant.session_token()
    assert (await salon.hold(token, tomorrow_at(10))).status == 409


async def test_two_clients_racing_for_one_time_get_one_move(salon: Salon) -> None:
    first = await salon.booking(tomorrow_at(10))
    second = await salon.booking(tomorrow_at(11))
    target = {"starts_at": iso(tomorrow_at(14))}
    answers = await asyncio.gather(
        *(managed(salon.tenant.api, b, "reschedule", json=target) for b in (first, second) * 5)
    )
    assert sorted({a.status for a in answers}) == [200, 409]
    listed = await salon.tenant.api.get("/api/v1/bookings", salon.tenant.business_key)
    at_target = [b for b in listed.body["data"] if b["starts_at"] == iso(tomorrow_at(14))]
    assert len(at_target) == 1


async def test_cancelling_records_the_client_and_reason_and_kills_the_link(
    salon: Salon, tap: EventTap
) -> None:
    booking = await salon.booking(tomorrow_at(12))
    answer = await managed(
        salon.tenant.api, booking, "cancel", json={"cancellation_reason": "Ill, sorry"}
    )
    assert answer.status == 200
    assert answer.body["status"] == "cancelled"
    assert answer.body["cancelled_by"] == "client"
    assert answer.body["manage_url"] is None
    shown = await salon.tenant.api.get(
        f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key
    )
    assert shown.body["cancelled_by"] == "client"
    assert shown.body["cancellation_reason"] == "Ill, sorry"
    event = await tap.wait_for(booking["id"], "booking.cancelled")
    assert event["data"]["cancelled_by"] == "client"
    assert event["data"]["actor"] == "client"
    # The link is dead now, for every route.
    for action in ("", "availability"):
        assert (await managed(salon.tenant.api, booking, action)).status == 404
    again = await managed(salon.tenant.api, booking, "cancel", json={})
    assert again.status == 404


async def test_moving_sends_booking_rescheduled_with_the_client_as_actor(
    salon: Salon, tap: EventTap
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    await managed(salon.tenant.api, booking, "reschedule", json={"starts_at": iso(tomorrow_at(13))})
    event = await tap.wait_for(booking["id"], "booking.rescheduled")
    assert event["data"]["actor"] == "client"
    assert event["data"]["starts_at"] == iso(tomorrow_at(13))


async def test_a_business_cancel_says_cancelled_by_business(salon: Salon, tap: EventTap) -> None:
    booking = await salon.booking(tomorrow_at(10))
    tenant = salon.tenant
    cancelled = await tenant.api.delete(f"/api/v1/bookings/{booking['id']}", tenant.business_key)
    assert cancelled.body["cancelled_by"] == "business"
    event = await tap.wait_for(booking["id"], "booking.cancelled")
    assert event["data"]["actor"] == "business"


async def test_a_business_cancel_kills_the_link(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    tenant = salon.tenant
    await tenant.api.delete(f"/api/v1/bookings/{booking['id']}", tenant.business_key)
    assert (await managed(tenant.api, booking)).status == 404


async def test_a_link_opens_only_its_own_booking(
    salon: Salon, api: Api, hub: dict[str, str]
) -> None:
    mine = await salon.booking(tomorrow_at(10))
    other_salon = await open_salon(await new_tenant(api, hub["key"]))
    theirs = await other_salon.booking(tomorrow_at(10))
    assert (await managed(api, mine)).body["id"] == mine["id"]
    assert (await managed(api, theirs)).body["id"] == theirs["id"]


# --- cutoffs and rate limits, on a booking-service and gateway of their own -------------

CUTOFF_MINUTES = 3 * 24 * 60


@pytest.fixture(scope="module")
async def strict(
    api: Api, stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """A gateway with small rate-limit buckets (5 requests, 1 more a second)."""
    logs = tmp_path_factory.mktemp("strict")
    with replica(
        stack, logs, RATE_LIMIT_SESSION_PER_SECOND="1", RATE_LIMIT_SESSION_BURST="5"
    ) as gateway:
        yield Api(api.session, gateway)


async def with_client_cutoffs(salon: Salon) -> None:
    """The business lets clients cancel and move bookings only up to three days ahead."""
    tenant = salon.tenant
    policy = {
        "client_cancel_cutoff_minutes": CUTOFF_MINUTES,
        "client_reschedule_cutoff_minutes": CUTOFF_MINUTES,
    }
    answer = await tenant.api.patch(
        f"/api/v1/businesses/{tenant.business_id}",
        tenant.business_key,
        {"booking_policy": policy},
    )
    assert answer.status == 200


async def test_cancelling_inside_the_client_cutoff_is_409_naming_the_rule(
    salon: Salon, api: Api
) -> None:
    await with_client_cutoffs(salon)
    booking = await salon.booking(tomorrow_at(10))
    answer = await managed(api, booking, "cancel", json={})
    assert answer.status == 409
    assert "client_cancel_cutoff_minutes" in answer.body["detail"]
    assert (await managed(api, booking)).body["status"] == "confirmed"
    shown = await managed(api, booking)
    assert shown.body["can_cancel"] is False
    assert shown.body["rules"]["client_cancel_cutoff_minutes"] == CUTOFF_MINUTES


async def test_a_booking_keeps_the_client_cutoffs_it_was_made_under(salon: Salon, api: Api) -> None:
    booking = await salon.booking(tomorrow_at(10))
    await with_client_cutoffs(salon)
    cancelled = await managed(api, booking, "cancel", json={})
    assert cancelled.status == 200
    assert cancelled.body["status"] == "cancelled"


async def test_moving_inside_the_client_cutoff_is_409_naming_the_rule(
    salon: Salon, api: Api
) -> None:
    await with_client_cutoffs(salon)
    booking = await salon.booking(tomorrow_at(10))
    answer = await managed(api, booking, "reschedule", json={"starts_at": iso(tomorrow_at(14))})
    assert answer.status == 409
    assert "client_reschedule_cutoff_minutes" in answer.body["detail"]
    shown = await managed(salon.tenant.api, booking)
    assert shown.body["starts_at"] == booking["starts_at"]


async def test_each_manage_link_has_its_own_rate_limit(salon: Salon, strict: Api) -> None:
    first = await salon.booking(tomorrow_at(10))
    second = await salon.booking(tomorrow_at(11))
    answers = [await managed(strict, first) for _ in range(6)]
    assert [a.status for a in answers[:5]] == [200] * 5
    assert answers[5].status == 429
    assert int(answers[5].headers["Retry-After"]) >= 1
    assert (await managed(strict, second)).status == 200


async def test_a_link_stops_working_once_the_appointment_is_over(
    salon: Salon, stack: LocalStack
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    assert (await managed(salon.tenant.api, booking)).status == 200
    # Time passes: the appointment now lies an hour in the past.
    connection = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        await connection.execute(
            "UPDATE bookings SET starts_at = now() - interval '90 minutes', "
            "ends_at = now() - interval '60 minutes', "
            "blocked_until = now() - interval '60 minutes' WHERE id = $1",
            uuid.UUID(booking["id"]),
        )
    finally:
        await connection.close()
    assert (await managed(salon.tenant.api, booking)).status == 404
    shown = await salon.tenant.api.get(
        f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key
    )
    assert shown.body["manage_url"] is None


async def test_a_completed_booking_has_no_working_link(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(11))
    tenant = salon.tenant
    for status in ("in_progress", "completed"):
        moved = await tenant.api.patch(
            f"/api/v1/bookings/{booking['id']}", tenant.business_key, {"status": status}
        )
        assert moved.status == 200
    assert moved.body["manage_url"] is None
    assert (await managed(tenant.api, booking)).status == 404


async def test_rotating_the_signing_key_keeps_existing_links_working(
    salon: Salon, stack: LocalStack
) -> None:
    booking = await salon.booking(tomorrow_at(14))
    rotated = stack.admin("rotate-manage-key")
    assert rotated == {"rotated": True, "retired_keys": 0}
    assert (await managed(salon.tenant.api, booking)).status == 200


async def test_retiring_the_previous_keys_kills_the_links_they_signed(
    stack: LocalStack,
) -> None:
    # On a database of its own: retiring the shared stack's keys would kill the links
    # other tests are holding.
    name = f"links_{uuid.uuid4().hex[:12]}"
    server = stack.env["DATABASE_URL"].rsplit("/", 1)[0]
    admin = await asyncpg.connect(stack.env["DATABASE_URL"])
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{server}/{name}"
    try:
        await migrate(dsn, "booking_service")
        pool = await open_pool(dsn, 1, 2)
        try:
            links = ManageLinks(ManageRepository(pool), "https://calendence.example")
            await links.load()
            booking_id = uuid.uuid4()
            old = links.token_for(booking_id)
            env = {"DATABASE_URL": dsn}
            kept = await asyncio.to_thread(lambda: stack_admin(stack, env, "rotate-manage-key"))
            assert kept["retired_keys"] == 0
            await links.refresh()
            new = links.token_for(booking_id)
            assert new != old
            assert await links.booking_of(old) == booking_id
            retired = await asyncio.to_thread(
                lambda: stack_admin(stack, env, "rotate-manage-key", "--retire-previous")
            )
            assert retired["retired_keys"] == 2
            await links.refresh()
            for token in (old, new):
                with pytest.raises(NotFound):
                    await links.booking_of(token)
            assert await links.booking_of(links.token_for(booking_id)) == booking_id
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def stack_admin(stack: LocalStack, env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "booking_service.admin", *args],
        env={**stack.env, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


async def test_the_businesss_own_widget_may_read_the_manage_routes(salon: Salon) -> None:
    tenant = salon.tenant
    shop = "https://shop.example"
    allowed = await tenant.api.patch(
        f"/api/v1/businesses/{tenant.business_id}",
        tenant.business_key,
        {"allowed_origins": [shop]},
    )
    assert allowed.status == 200
    booking = await salon.booking(tomorrow_at(10))
    for action in ("", "availability"):
        mine = await managed(tenant.api, booking, action, headers={"Origin": shop})
        assert mine.headers["Access-Control-Allow-Origin"] == shop
        other = await managed(
            tenant.api, booking, action, headers={"Origin": "https://evil.example"}
        )
        assert other.status == 200
        assert "Access-Control-Allow-Origin" not in other.headers
