"""Which store failures a caller is told to retry (503 with Retry-After) rather than 500."""

import asyncpg
import redis.exceptions
from calendence.errors import is_store_busy


def test_redis_busy_running_a_script_is_a_busy_store() -> None:
    busy = redis.exceptions.ResponseError(
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    )
    assert is_store_busy(busy)


def test_a_redis_primary_that_lost_its_replica_link_is_a_busy_store() -> None:
    assert is_store_busy(redis.exceptions.ResponseError("MASTERDOWN Link with MASTER is down"))


def test_a_redis_primary_short_of_replicas_for_a_write_is_a_busy_store() -> None:
    refused = redis.exceptions.ResponseError("NOREPLICAS Not enough good replicas to write.")
    assert is_store_busy(refused)


def test_a_redis_reply_naming_our_mistake_is_not_a_busy_store() -> None:
    wrong = redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong")
    assert not is_store_busy(wrong)


def test_a_full_pool_and_a_dropped_connection_are_busy_stores() -> None:
    assert is_store_busy(redis.exceptions.ConnectionError("Too many connections"))
    assert is_store_busy(asyncpg.exceptions.CannotConnectNowError("starting up"))
    assert is_store_busy(TimeoutError())


def test_a_bug_is_not_a_busy_store() -> None:
    assert not is_store_busy(KeyError("business_id"))
