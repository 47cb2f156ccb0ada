"""The hold, booking and race specifications again, on a Redis Cluster.

Each test below is the one-server suite's own test, collected here a second time so it
runs against this package's stack (tests/cluster/conftest.py). Together they run every
Lua script and pipeline hold-service and the gateway send to Redis: placing a hold
(script and locator in one pipeline, across slots), surveying staff and slots (a
pipeline of MGETs, one slot each), releasing, consuming and confirming (script and
pending-claims set in one pipeline), giving a consumed hold back, freeing a cancelled
booking, moving one (the business's reschedule and the client's), reloading scripts
Redis forgot, Idempotency-Key records and rate-limit buckets. A key layout that put one
script's keys in two hash slots would be refused (CROSSSLOT, or by redis-py before
sending) and fail these; tests/cluster/test_service_logs.py checks that no service
met one in the background either.
"""

from __future__ import annotations

import aiohttp
from calendence.devstack.stack import LocalStack

from tests.hold_helpers import Shop
from tests.test_booking_idempotency import (
    redis,
    test_a_retry_after_redis_lost_everything_replays_the_booking,
    test_after_redis_lost_everything_the_key_with_another_body_is_422,
)
from tests.test_bookings import (
    test_a_hold_on_a_service_deleted_since_cannot_be_booked,
    test_concurrent_bookings_of_one_hold_make_exactly_one_booking,
    test_delete_cancels_records_cancelled_at_and_frees_the_slot,
    test_page_examples_in_order_give_a_confirmed_booking,
    test_postgres_refuses_a_double_booking_when_redis_lost_the_hold,
    test_reschedule_moves_the_booking_and_frees_the_old_slot,
    test_reschedule_onto_a_held_slot_answers_409,
)
from tests.test_deposits import (
    local_stripe,
    test_stripe_down_answers_503_keeps_the_hold_and_writes_nothing,
)
from tests.test_holds import (
    test_holds_still_work_after_redis_forgets_its_scripts,
    test_racing_clients_of_a_staffed_service_never_share_a_staff_member,
    test_released_hold_frees_the_slot,
    test_same_session_asking_again_gets_the_same_hold_back,
    test_the_least_booked_staff_member_that_day_is_assigned,
    test_two_hundred_clients_racing_for_one_slot_get_exactly_one_hold,
)
from tests.test_manage import (
    test_moving_claims_the_new_time_and_frees_the_old_one,
    test_two_clients_racing_for_one_time_get_one_move,
)
from tests.test_rate_limits import (
    gateways,
    limited,
    test_a_concurrent_burst_gets_exactly_the_bucket,
    test_the_bucket_is_shared_by_every_gateway_replica,
)
from tests.test_under_load import (
    crowd,
    shop,
    tokens,
)
from tests.test_under_load import (
    test_500_concurrent_holds_on_one_slot_give_one_201_and_499_409s_three_rounds_running as race,
)

# Fixtures the tests above take from their own modules.
FIXTURES = (redis, local_stripe, gateways, limited, crowd, shop, tokens)

__all__ = [
    "test_500_concurrent_holds_with_idempotency_keys_give_one_201_and_499_409s",
    "test_a_concurrent_burst_gets_exactly_the_bucket",
    "test_a_hold_on_a_service_deleted_since_cannot_be_booked",
    "test_a_retry_after_redis_lost_everything_replays_the_booking",
    "test_after_redis_lost_everything_the_key_with_another_body_is_422",
    "test_concurrent_bookings_of_one_hold_make_exactly_one_booking",
    "test_delete_cancels_records_cancelled_at_and_frees_the_slot",
    "test_holds_still_work_after_redis_forgets_its_scripts",
    "test_moving_claims_the_new_time_and_frees_the_old_one",
    "test_page_examples_in_order_give_a_confirmed_booking",
    "test_postgres_refuses_a_double_booking_when_redis_lost_the_hold",
    "test_racing_clients_of_a_staffed_service_never_share_a_staff_member",
    "test_released_hold_frees_the_slot",
    "test_reschedule_moves_the_booking_and_frees_the_old_slot",
    "test_reschedule_onto_a_held_slot_answers_409",
    "test_same_session_asking_again_gets_the_same_hold_back",
    "test_stripe_down_answers_503_keeps_the_hold_and_writes_nothing",
    "test_the_bucket_is_shared_by_every_gateway_replica",
    "test_the_least_booked_staff_member_that_day_is_assigned",
    "test_two_clients_racing_for_one_time_get_one_move",
    "test_two_hundred_clients_racing_for_one_slot_get_exactly_one_hold",
]


async def test_500_concurrent_holds_with_idempotency_keys_give_one_201_and_499_409s(
    crowd: aiohttp.ClientSession, stack: LocalStack, shop: Shop, tokens: list[str]
) -> None:
    """The one-server suite's 500-client race, with Idempotency-Key records (the
    plain variant adds nothing a cluster could break)."""
    await race(crowd, stack, shop, tokens, idempotency=True)
