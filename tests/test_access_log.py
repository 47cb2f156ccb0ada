"""Which requests get an access line: failures, slow ones, a sample, or all at DEBUG."""

from __future__ import annotations

from calendence.logs import AccessLog


def test_ordinary_fast_requests_are_not_logged_when_nothing_is_sampled() -> None:
    policy = AccessLog(slow_seconds=0.25, sample_rate=0.0)
    assert not any(policy.wanted(0.002, failed=False) for _ in range(1000))


def test_failures_and_slow_requests_are_always_logged() -> None:
    policy = AccessLog(slow_seconds=0.25, sample_rate=0.0)
    assert policy.wanted(0.002, failed=True)
    assert policy.wanted(0.25, failed=False)


def test_a_sample_rate_of_one_logs_everything() -> None:
    policy = AccessLog(slow_seconds=0.25, sample_rate=1.0)
    assert all(policy.wanted(0.001, failed=False) for _ in range(100))


def test_debug_logs_everything() -> None:
    policy = AccessLog(slow_seconds=0.25, sample_rate=0.0)
    policy.every = True
    assert policy.wanted(0.001, failed=False)


def test_a_sample_is_roughly_its_share() -> None:
    policy = AccessLog(slow_seconds=10.0, sample_rate=0.1)
    logged = sum(policy.wanted(0.001, failed=False) for _ in range(20_000))
    assert 1_500 < logged < 2_500
