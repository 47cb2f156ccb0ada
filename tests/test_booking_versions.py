"""Versions on bookings: ETag on every answer, If-Match guarding PATCH and DELETE."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tests.api import Answer, tomorrow_at
from tests.booking_helpers import Salon
from tests.catalogue_helpers import problem


def path(booking: dict[str, object]) -> str:
    return f"/api/v1/bookings/{booking['id']}"


async def test_a_new_booking_is_version_1_with_that_etag(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    assert booking["version"] == 1
    shown = await salon.tenant.api.get(path(booking), salon.tenant.business_key)
    assert shown.headers["ETag"] == '"1"'


async def test_every_change_bumps_the_version_and_the_etag(salon: Salon) -> None:
    tenant = salon.tenant
    booking = await salon.booking(tomorrow_at(10))
    noted = await tenant.api.patch(path(booking), tenant.business_key, {"notes": "Window seat"})
    assert noted.body["version"] == 2 and noted.headers["ETag"] == '"2"'
    moved = await tenant.api.patch(
        path(booking), tenant.business_key, {"starts_at": tomorrow_at(11).isoformat()}
    )
    assert moved.body["version"] == 3 and moved.headers["ETag"] == '"3"'
    cancelled = await tenant.api.delete(path(booking), tenant.business_key)
    assert cancelled.body["version"] == 4 and cancelled.headers["ETag"] == '"4"'


async def test_patch_with_a_stale_if_match_is_412_and_changes_nothing(salon: Salon) -> None:
    tenant = salon.tenant
    booking = await salon.booking(tomorrow_at(10))
    await tenant.api.patch(path(booking), tenant.business_key, {"notes": "first"})
    stale = await tenant.api.patch(
        path(booking),
        tenant.business_key,
        {"notes": "second", "starts_at": tomorrow_at(12).isoformat()},
        headers={"If-Match": '"1"'},
    )
    problem(stale, 412)
    shown = await tenant.api.get(path(booking), tenant.business_key)
    assert shown.body["notes"] == "first"
    assert shown.body["starts_at"] == booking["starts_at"]
    assert shown.body["version"] == 2
    # The stale time was never claimed: another client can hold it.
    token = await tenant.session_token()
    assert (await salon.hold(token, tomorrow_at(12))).status == 201


async def test_patch_with_the_current_if_match_succeeds(salon: Salon) -> None:
    tenant = salon.tenant
    booking = await salon.booking(tomorrow_at(10))
    etag = (await tenant.api.get(path(booking), tenant.business_key)).headers["ETag"]
    answer = await tenant.api.patch(
        path(booking), tenant.business_key, {"notes": "ok"}, headers={"If-Match": etag}
    )
    assert answer.status == 200, answer.body
    assert answer.body["notes"] == "ok"


async def test_delete_with_a_stale_if_match_is_412_and_the_booking_stays(salon: Salon) -> None:
    tenant = salon.tenant
    booking = await salon.booking(tomorrow_at(10))
    await tenant.api.patch(path(booking), tenant.business_key, {"notes": "changed"})
    stale = await tenant.api.delete(path(booking), tenant.business_key, headers={"If-Match": '"1"'})
    problem(stale, 412)
    assert (await tenant.api.get(path(booking), tenant.business_key)).body["status"] == "confirmed"
    current = await tenant.api.delete(
        path(booking), tenant.business_key, headers={"If-Match": '"2"'}
    )
    assert current.status == 200 and current.body["status"] == "cancelled"


async def test_if_match_star_matches_any_version(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    answer = await salon.tenant.api.patch(
        path(booking), salon.tenant.business_key, {"notes": "x"}, headers={"If-Match": "*"}
    )
    assert answer.status == 200, answer.body


async def test_a_weak_or_malformed_if_match_never_matches(salon: Salon) -> None:
    tenant = salon.tenant
    booking = await salon.booking(tomorrow_at(10))
    for tag in ('W/"1"', "1", '"one"'):
        answer = await tenant.api.patch(
            path(booking), tenant.business_key, {"notes": tag}, headers={"If-Match": tag}
        )
        problem(answer, 412)
    assert (await tenant.api.get(path(booking), tenant.business_key)).body["notes"] is None


async def test_if_match_listing_the_current_version_among_others_matches(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10))
    answer = await salon.tenant.api.patch(
        path(booking),
        salon.tenant.business_key,
        {"notes": "x"},
        headers={"If-Match": '"7", "1"'},
    )
    assert answer.status == 200, answer.body


async def _two_at_once_on_version_1(
    salon: Salon, round_number: int, send: Callable[[str, int], Awaitable[Answer]]
) -> tuple[dict[str, Any], Answer]:
    """A new booking, and two requests `send(path, editor)` made on it at once, both
    with `If-Match: "1"`: of the two, one must win and one get 412."""
    booking = await salon.booking(tomorrow_at(9 + round_number))
    answers = await asyncio.gather(*(send(path(booking), editor) for editor in (1, 2)))
    assert sorted(a.status for a in answers) == [200, 412], [a.body for a in answers]
    winner = next(a for a in answers if a.status == 200)
    shown = await salon.tenant.api.get(path(booking), salon.tenant.business_key)
    assert shown.body["version"] == 2
    return shown.body, winner


async def test_two_concurrent_patches_with_the_same_if_match_one_wins_one_is_412(
    salon: Salon,
) -> None:
    tenant = salon.tenant

    async def patch(at: str, editor: int) -> Answer:
        return await tenant.api.patch(
            at, tenant.business_key, {"notes": f"editor {editor}"}, headers={"If-Match": '"1"'}
        )

    for round_number in range(5):
        shown, winner = await _two_at_once_on_version_1(salon, round_number, patch)
        assert shown["notes"] == winner.body["notes"]


async def test_two_concurrent_deletes_with_the_same_if_match_one_wins_one_is_412(
    salon: Salon,
) -> None:
    tenant = salon.tenant

    async def delete(at: str, editor: int) -> Answer:
        return await tenant.api.delete(at, tenant.business_key, headers={"If-Match": '"1"'})

    for round_number in range(5):
        shown, winner = await _two_at_once_on_version_1(salon, round_number, delete)
        assert shown == winner.body
        assert shown["status"] == "cancelled"
