"""When a failed webhook delivery is tried again: the waits grow fourfold from 5 s,
stop growing at 8 hours, carry at most 20 % jitter, and end after the 10th attempt."""

from __future__ import annotations

from datetime import timedelta

import pytest
from notify_service.schedule import MAX_ATTEMPTS, nominal_wait, retry_in


@pytest.mark.parametrize(
    ("failed_attempts", "seconds"),
    [(1, 5), (2, 20), (3, 80), (4, 320), (5, 1280), (6, 5120), (7, 20480)],
)
def test_each_wait_is_four_times_the_one_before(failed_attempts: int, seconds: int) -> None:
    assert nominal_wait(failed_attempts) == seconds


def test_waits_stop_growing_at_eight_hours() -> None:
    assert nominal_wait(8) == nominal_wait(9) == 8 * 3600


def test_the_tenth_attempt_comes_about_a_day_after_the_first() -> None:
    total = sum(nominal_wait(n) for n in range(1, MAX_ATTEMPTS))
    assert timedelta(hours=23.5) < timedelta(seconds=total) < timedelta(hours=23.7)


def test_jitter_keeps_every_wait_within_a_fifth_of_nominal() -> None:
    waits = [retry_in(3) for _ in range(2000)]
    seconds = [w.total_seconds() for w in waits if w is not None]
    assert len(seconds) == 2000
    assert min(seconds) >= 80 * 0.8
    assert max(seconds) <= 80 * 1.2


def test_jitter_spreads_retries_rather_than_repeating_one_wait() -> None:
    assert len({retry_in(2) for _ in range(50)}) > 40


def test_after_the_last_attempt_there_is_no_retry() -> None:
    assert retry_in(MAX_ATTEMPTS) is None
    assert retry_in(MAX_ATTEMPTS - 1) is not None
