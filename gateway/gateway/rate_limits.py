"""Rate limits per key: a token bucket per key in Redis, shared by every gateway replica.

The bucket is kept the GCRA way, as one number per key: the time at which it would be
full again (its "theoretical arrival time"). One Lua script reads the clock, decides and
moves that time in a single atomic step, so replicas never race, and a request costs
one Redis round trip (EVALSHA, through redis-py's registered script). Redis' own clock is
used, so replicas' clocks need not agree.
Session tokens get a smaller bucket than business and hub keys (settings).

Every answer from Redis is also copied into this replica's own buckets
(`gateway.local_buckets`). When Redis cannot answer (down, unreachable, or no
connection free within RATE_LIMIT_REDIS_TIMEOUT_SECONDS) the replica limits by itself
from those buckets, each key getting RATE_LIMIT_FALLBACK_SHARE of its bucket, and asks
Redis again a second later: a limit that vanished when its store did would vanish
exactly when someone floods the API. Refusing everything instead would take the
platform down with Redis, so the fallback is a limit, never none and never all.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from calendence.principals import KeyKind, Principal
from calendence.settings import GatewaySettings
from calendence.storage import RedisClient
from redis.exceptions import RedisClusterException, RedisError

from gateway.local_buckets import Bucket, Decision, LocalBuckets

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
# After Redis failed, requests use the local buckets this long before Redis is tried
# again, so an outage costs one timeout per second, not one per request.
_RETRY_REDIS_AFTER_SECONDS = 1.0


class RateLimiter:
    def __init__(
        self, redis: RedisClient, settings: GatewaySettings, local: LocalBuckets | None = None
    ) -> None:
        self._take = redis.register_script(_GCRA)
        self.session = Bucket(
            settings.rate_limit_session_per_second, settings.rate_limit_session_burst
        )
        self.server_keys = Bucket(settings.rate_limit_per_second, settings.rate_limit_burst)
        self.fallback_share = settings.rate_limit_fallback_share
        self.local = local or LocalBuckets()
        self._redis_down_until = 0.0
        self._last_failure_logged = 0.0

    def bucket_of(self, principal: Principal) -> Bucket:
        return self.session if principal.kind is KeyKind.SESSION else self.server_keys

    async def take(self, principal: Principal) -> Decision:
        """Take a token from the key's bucket: the shared one, or this replica's."""
        bucket = self.bucket_of(principal)
        key = principal.key_id
        if time.monotonic() >= self._redis_down_until:
            try:
                reply = await self._take(
                    keys=[f"cal:rl:{{{key}}}"], args=[bucket.interval_us, bucket.size]
                )
            except (RedisError, RedisClusterException) as error:  # the latter: no node
                self._redis_failed(error)
            else:
                allowed, remaining, retry_after, full_in = reply
                self.local.adopt(key, int(full_in))
                return Decision(
                    bool(allowed), bucket, int(remaining), int(retry_after), int(full_in)
                )
        return self.local.take(key, bucket.share(self.fallback_share))

    def _redis_failed(self, error: Exception) -> None:
        now = time.monotonic()
        self._redis_down_until = now + _RETRY_REDIS_AFTER_SECONDS
        if now - self._last_failure_logged > _LOG_EVERY_SECONDS:
            self._last_failure_logged = now
            log.warning("rate limits: Redis unavailable; limiting on this replica alone: %s", error)


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
# Where the middleware leaves the decision for the answer's headers.
RATE_LIMIT = "rate_limit"
