"""Token buckets per key kept in this process: the GCRA, one number per key.

A bucket of `size` tokens refilled at `per_second` is kept as the time at which it
would be full again (its "theoretical arrival time"): a request is let through when
taking one token leaves that time no more than `size` intervals ahead of now. The same
rule runs in Redis for the buckets every replica shares (`gateway.rate_limits`); this is
the per-replica copy, used when Redis cannot answer.

`adopt` takes a key's state from the shared store's answer, so a replica that falls
back to its own buckets carries on from where the shared bucket was instead of granting
a fresh burst, and a design that answers from local buckets and reconciles with Redis
in the background can use the same two calls. Pure and synchronous: the clock is given.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    per_second: float
    size: int

    # Cached: every request's decision and answer headers read both.
    @functools.cached_property
    def interval_us(self) -> int:
        return max(1, round(1_000_000 / self.per_second))

    @functools.cached_property
    def policy(self) -> str:
        return f"{self.size};w={max(1, math.ceil(self.size / self.per_second))}"

    def share(self, fraction: float) -> Bucket:
        """The same bucket scaled down (at least one token), e.g. one replica's part."""
        if fraction >= 1:
            return self
        return Bucket(self.per_second * fraction, max(1, math.floor(self.size * fraction)))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    bucket: Bucket
    remaining: int
    retry_after_us: int
    full_in_us: int

    def headers(self) -> dict[str, str]:
        """The RateLimit-* fields (draft-ietf-httpapi-ratelimit-headers)."""
        return {
            "RateLimit-Limit": str(self.bucket.size),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.full_in_us / 1_000_000)),
            "RateLimit-Policy": self.bucket.policy,
        }

    @property
    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after_us / 1_000_000))


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class LocalBuckets:
    """GCRA buckets per key in memory, at most `max_keys` of them.

    A full bucket needs no entry (a missing key is full), so full ones are dropped first
    when the table outgrows `max_keys`; only if every entry is in use are the oldest
    dropped, which at worst hands those keys a fresh burst.
    """

    def __init__(
        self, clock_us: Callable[[], int] = _monotonic_us, max_keys: int = 100_000
    ) -> None:
        self._clock_us = clock_us
        self._max_keys = max_keys
        # key -> the clock reading (µs) at which its bucket is full again.
        self._full_at: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._full_at)

    def take(self, key: str, bucket: Bucket) -> Decision:
        """Take one token from `key`'s bucket if it has one."""
        now = self._clock_us()
        interval = bucket.interval_us
        full_at = max(self._full_at.get(key, now), now)
        next_full_at = full_at + interval
        allowed_from = next_full_at - interval * bucket.size
        if now < allowed_from:
            return Decision(False, bucket, 0, allowed_from - now, full_at - now)
        self._set(key, next_full_at, now)
        return Decision(True, bucket, (now - allowed_from) // interval, 0, next_full_at - now)

    def adopt(self, key: str, full_in_us: int) -> None:
        """Take the state another keeper of this bucket reported: full in `full_in_us`,
        unless this copy already has it emptier. Tokens taken are never handed back, so
        the copy only learns of more of them: answers to requests sent together can
        arrive in another order than the keeper gave them, and an earlier one (fuller)
        taken on last would hand the copy tokens the keeper has already given out."""
        now = self._clock_us()
        full_at = max(now + full_in_us, self._full_at.get(key, now))
        if full_at > now:
            self._set(key, full_at, now)
        else:
            self._full_at.pop(key, None)

    def _set(self, key: str, full_at: int, now: int) -> None:
        # Re-inserted so that the dict's order is least recently set first.
        self._full_at.pop(key, None)
        self._full_at[key] = full_at
        if len(self._full_at) > self._max_keys:
            self._evict(now)

    def _evict(self, now: int) -> None:
        full = [key for key, at in self._full_at.items() if at <= now]
        for key in full:
            del self._full_at[key]
        excess = len(self._full_at) - self._max_keys * 9 // 10
        if excess > 0:
            for key in list(self._full_at)[:excess]:
                del self._full_at[key]
