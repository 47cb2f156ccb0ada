"""When a failed delivery is tried again, and when an endpoint is given up on.

Attempt 1 goes out at once. After failed attempt n the next waits 5 s x 4^(n-1),
capped at 8 hours, each wait stretched or shrunk at random by up to 20 % (jitter, so
a recovering endpoint is not hit by every retry at once):

    attempt   2     3     4      5       6       7      8      9     10
    after     5 s   20 s  80 s   5m20s   21m20s  1h25m  5h41m  8 h   8 h

The 10th attempt comes about 23.6 hours after the first; if it fails too the delivery
is `failed`. An endpoint whose every attempt failed for 5 days is disabled.
"""

from __future__ import annotations

import random
from datetime import timedelta

FIRST_RETRY_SECONDS = 5.0
GROWTH = 4.0
MAX_WAIT_SECONDS = 8 * 3600.0
JITTER = 0.2
MAX_ATTEMPTS = 10
DISABLE_AFTER = timedelta(days=5)


def nominal_wait(failed_attempts: int) -> float:
    """Seconds before the next attempt, after `failed_attempts` failures (no jitter)."""
    return min(FIRST_RETRY_SECONDS * GROWTH ** (failed_attempts - 1), MAX_WAIT_SECONDS)


def retry_in(failed_attempts: int) -> timedelta | None:
    """The wait before the next attempt, or None when there is none left."""
    if failed_attempts >= MAX_ATTEMPTS:
        return None
    jitter = random.uniform(1 - JITTER, 1 + JITTER)
    return timedelta(seconds=nominal_wait(failed_attempts) * jitter)
