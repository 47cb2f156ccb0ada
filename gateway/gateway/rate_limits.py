"""Rate limits per key: a token bucket per key in Redis, shared by every gateway replica.

The bucket is kept the GCRA way, as one number per key: the time at which it would be
full again (its "theoretical arrival time"). One Lua script reads the clock, decides and
moves that time in a single atomic step, so replicas never race, and a request costs
one Redis round trip (EVALSHA, through redis-py's registered script). Redis' own clock is
used, so replicas' clocks need not agree.
Session tokens get a smaller bucket than business and hub keys (settings).

If Redis cannot be reached the request goes through unlimited (logged): a rate limit
protects the platform, it must not take it down with Redis.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from aiohttp import web
from calendence.settings import GatewaySettings
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.auth import KeyKind, Principal

log = logging.getLogger("gateway.rate_limits")

# KEYS[1]: the key's bucket. ARGV[1]: microseconds per token (1 / rate); ARGV[2]: the
# bucket size. Returns {allowed (0/1), tokens left, microseconds until a request would
# be let through (0 when allowed), microseconds until the bucket is full again}.
_GCRA = """
local interval = tonumber(ARGV[1])
local size = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local full_at = tonumber(redis.call('GET', KEYS[1]) or now)
if full_at < now then full_at = now end
local next_full_at = full_at + interval
local allowed_from = next_full_at - interval * size
if now < allowed_from then
  return {0, 0, allowed_from - now, full_at - now}
end
redis.call('SET', KEYS[1], next_full_at, 'PX', math.ceil((next_full_at - now) / 1000))
return {1, math.floor((now - allowed_from) / interval), 0, next_full_at - now}
"""

_LOG_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class Bucket:
    per_second: float
    size: int

    @property
    def interval_us(self) -> int:
        return max(1, round(1_000_000 / self.per_second))

    @property
    def policy(self) -> str:
        return f"{self.size};w={max(1, math.ceil(self.size / self.per_second))}"


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


class RateLimiter:
    def __init__(self, redis: Redis, settings: GatewaySettings) -> None:
        self._take = redis.register_script(_GCRA)
        self.session = Bucket(
            settings.rate_limit_session_per_second, settings.rate_limit_session_burst
        )
        self.server_keys = Bucket(settings.rate_limit_per_second, settings.rate_limit_burst)
        self._last_failure_logged = 0.0

    def bucket_of(self, principal: Principal) -> Bucket:
        return self.session if principal.kind is KeyKind.SESSION else self.server_keys

    async def take(self, principal: Principal) -> Decision | None:
        """Take a token from the key's bucket; None when Redis could not be asked."""
        bucket = self.bucket_of(principal)
        try:
            reply = await self._take(
                keys=[f"cal:rl:{{{principal.key_id}}}"], args=[bucket.interval_us, bucket.size]
            )
        except RedisError as error:
            now = time.monotonic()
            if now - self._last_failure_logged > _LOG_EVERY_SECONDS:
                self._last_failure_logged = now
                log.warning("rate limits unavailable; letting requests through: %s", error)
            return None
        allowed, remaining, retry_after, full_in = reply
        return Decision(bool(allowed), bucket, int(remaining), int(retry_after), int(full_in))


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
# Where the middleware leaves the decision for the answer's headers.
RATE_LIMIT = "rate_limit"
