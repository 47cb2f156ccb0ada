"""A replica's own token buckets (the rate limits' fallback), on a clock the test moves."""

from __future__ import annotations

from gateway.local_buckets import Bucket, LocalBuckets

TEN_A_SECOND_BURST_FOUR = Bucket(per_second=10, size=4)


class Clock:
    def __init__(self) -> None:
        self.now_us = 1_000_000_000

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += round(seconds * 1_000_000)


def take_many(buckets: LocalBuckets, key: str, count: int) -> int:
    return sum(buckets.take(key, TEN_A_SECOND_BURST_FOUR).allowed for _ in range(count))


def test_a_burst_gets_exactly_the_bucket_size() -> None:
    assert take_many(LocalBuckets(Clock()), "key", 100) == 4


def test_the_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    take_many(buckets, "key", 4)
    clock.advance(0.25)  # 2.5 tokens at 10 a second
    assert take_many(buckets, "key", 100) == 2


def test_a_refusal_says_when_the_next_token_comes() -> None:
    buckets = LocalBuckets(Clock())
    take_many(buckets, "key", 4)
    refused = buckets.take("key", TEN_A_SECOND_BURST_FOUR)
    assert not refused.allowed
    assert refused.retry_after_us == 100_000
    assert refused.remaining == 0


def test_each_key_has_a_bucket_of_its_own() -> None:
    buckets = LocalBuckets(Clock())
    take_many(buckets, "spent", 4)
    assert take_many(buckets, "fresh", 100) == 4


def test_an_adopted_state_carries_on_where_the_shared_bucket_was() -> None:
    buckets = LocalBuckets(Clock())
    # The shared store said: full again in 0.4 s, i.e. all 4 tokens spent.
    buckets.adopt("key", 400_000)
    assert take_many(buckets, "key", 100) == 0


def test_an_earlier_answer_taken_on_after_a_later_one_hands_back_no_tokens() -> None:
    buckets = LocalBuckets(Clock())
    # Two answers from the shared store, taken on in the other order than it gave
    # them: all 4 tokens spent (full in 0.4 s), then only 1 spent (full in 0.1 s).
    buckets.adopt("key", 400_000)
    buckets.adopt("key", 100_000)
    assert take_many(buckets, "key", 100) == 0


def test_a_share_of_a_bucket_is_a_smaller_bucket_with_the_same_refill_time() -> None:
    half = TEN_A_SECOND_BURST_FOUR.share(0.5)
    assert (half.per_second, half.size) == (5, 2)
    buckets = LocalBuckets(Clock())
    assert sum(buckets.take("key", half).allowed for _ in range(100)) == 2


def test_full_buckets_are_forgotten_first_when_the_table_is_full() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock, max_keys=10)
    for index in range(10):
        buckets.take(f"idle-{index}", TEN_A_SECOND_BURST_FOUR)
    clock.advance(1)  # every idle bucket is full again
    take_many(buckets, "busy", 4)
    buckets.take("newcomer", TEN_A_SECOND_BURST_FOUR)
    assert len(buckets) == 2
    assert take_many(buckets, "busy", 100) == 0
