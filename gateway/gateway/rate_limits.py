"""Rate limits per key: a token bucket per key in Redis, shared by every gateway replica,
decided on each replica from its own copy of the bucket.

The bucket is kept the GCRA way, as one number per key: the time at which it would be
full again (its "theoretical arrival time"). In Redis one Lua script reads the clock,
decides and moves that time in a single atomic step, so replicas never race; Redis' own
clock is used, so replicas' clocks need not agree. Session tokens get a smaller bucket
than business and hub keys (settings).

No request waits for Redis when its key was heard of lately. Each replica keeps a copy
of every key's bucket (`gateway.local_buckets`): a key that Redis answered for within
RATE_LIMIT_LOCAL_SECONDS is decided from the copy, and every token let through is sent
to the shared bucket at once in the background (all keys' in one pipeline, one in
flight at a time; on one Redis server one script counts up to 100 keys' in), whose
answer the copy then takes on, together with what this replica let through meanwhile.
A key not heard of lately (new to this replica, or quiet) asks Redis first, as every
request used to, and so do its requests while any earlier one's answer from Redis is on
its way (the copy cannot know yet what Redis gave those: a burst at first contact would
otherwise get Redis's bucket and the copy's).

Tolerance across replicas: a replica lets through what its copy allows (one replica
alone never exceeds the bucket), and its copy hears of the other replicas' tokens with
Redis's answer to its own, one round trip after it lets one through. So with R replicas
a key can get more than its bucket only when a burst reaches several replicas before
their copies hear of each other: at worst R buckets' worth in that moment, never more
in the long run, because every token let through reaches the shared bucket, which then
stays empty for longer (refusing on every replica) until the key is back within its
rate.

When Redis cannot answer (down, unreachable, or no connection free within
RATE_LIMIT_REDIS_TIMEOUT_SECONDS) the replica limits by itself from the copies, each
key getting RATE_LIMIT_FALLBACK_SHARE of its bucket, and asks Redis again a second
later: a limit that vanished when its store did would vanish exactly when someone
floods the API. Refusing everything instead would take the platform down with Redis,
so the fallback is a limit, never none and never all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web
from calendence.principals import KeyKind, Principal
from calendence.settings import GatewaySettings
from calendence.storage import RedisClient, keys_meet_anywhere
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

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

# KEYS: buckets; ARGV: for each, microseconds per token and the tokens a replica let
# through. Counts them in (however empty that leaves a bucket: a key over its limit
# stays refused longer) and returns, for each, microseconds until it is full again.
_SPEND = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local full_in = {}
for i = 1, #KEYS do
  local full_at = tonumber(redis.call('GET', KEYS[i]) or now)
  if full_at < now then full_at = now end
  full_at = full_at + tonumber(ARGV[2 * i - 1]) * tonumber(ARGV[2 * i])
  redis.call('SET', KEYS[i], full_at, 'PX', math.ceil((full_at - now) / 1000))
  full_in[i] = full_at - now
end
return full_in
"""
# Buckets one spend script counts in on a single Redis server (a cluster's script
# touches one slot: one bucket). Bounded so that one script never holds Redis long.
_SPENDS_PER_SCRIPT = 100

_LOG_EVERY_SECONDS = 10.0
# After Redis failed, requests use the local buckets this long before Redis is tried
# again, so an outage costs one timeout per second, not one per request.
_RETRY_REDIS_AFTER_SECONDS = 1.0
_MAX_KEYS_HEARD = 100_000


def _shared_key(key: str) -> str:
    return f"cal:rl:{{{key}}}"


class RateLimiter:
    def __init__(
        self, redis: RedisClient, settings: GatewaySettings, local: LocalBuckets | None = None
    ) -> None:
        self.redis = redis
        self._take = redis.register_script(_GCRA)
        self._spend = redis.register_script(_SPEND)
        self._buckets_apart = not keys_meet_anywhere(redis)
        self.session = Bucket(
            settings.rate_limit_session_per_second, settings.rate_limit_session_burst
        )
        self.server_keys = Bucket(settings.rate_limit_per_second, settings.rate_limit_burst)
        self.fallback_share = settings.rate_limit_fallback_share
        self.local_seconds = settings.rate_limit_local_seconds
        self.local = local or LocalBuckets()
        # key -> until when (monotonic) this replica decides it from its copy.
        self._heard_until: dict[str, float] = {}
        # key -> its requests waiting for Redis's decision: while any is, the copy may
        # not know of tokens Redis gave them, so the key's next requests ask Redis too.
        self._asking: dict[str, int] = {}
        # key -> [microseconds per token, tokens let through not yet sent to Redis].
        self._unsent: dict[str, list[int]] = {}
        self._sending: asyncio.Task[None] | None = None
        self._redis_down_until = 0.0
        self._last_failure_logged = 0.0

    def bucket_of(self, principal: Principal) -> Bucket:
        return self.session if principal.kind is KeyKind.SESSION else self.server_keys

    async def take(self, principal: Principal) -> Decision:
        """Take a token from the key's bucket: the shared one, or this replica's."""
        bucket = self.bucket_of(principal)
        key = principal.key_id
        now = time.monotonic()
        if now < self._redis_down_until:
            return self.local.take(key, bucket.share(self.fallback_share))
        if self._heard_until.get(key, 0.0) > now and key not in self._asking:
            decision = self.local.take(key, bucket)
            if decision.allowed:
                self._send_later(key, bucket)
            return decision
        self._asking[key] = self._asking.get(key, 0) + 1
        try:
            reply = await self._take(
                keys=[_shared_key(key)], args=[bucket.interval_us, bucket.size]
            )
        except (RedisError, RedisClusterException) as error:  # the latter: no node serves it
            self._redis_failed(error)
            return self.local.take(key, bucket.share(self.fallback_share))
        finally:
            waiting = self._asking.pop(key) - 1
            if waiting:
                self._asking[key] = waiting
        allowed, remaining, retry_after, full_in = reply
        self._heard(key, bucket.interval_us, int(full_in))
        return Decision(bool(allowed), bucket, int(remaining), int(retry_after), int(full_in))

    def _heard(self, key: str, interval_us: int, full_in_us: int) -> None:
        """Redis said the key's bucket is full in `full_in_us`: the copy takes that on,
        with what this replica let through that Redis has not counted yet."""
        unsent = self._unsent.get(key)
        self.local.adopt(key, full_in_us + (unsent[1] * interval_us if unsent else 0))
        if len(self._heard_until) >= _MAX_KEYS_HEARD:
            self._heard_until.clear()  # every key asks Redis again: safe, briefly slower
        self._heard_until[key] = time.monotonic() + self.local_seconds

    def _send_later(self, key: str, bucket: Bucket) -> None:
        unsent = self._unsent.get(key)
        if unsent is None:
            self._unsent[key] = [bucket.interval_us, 1]
        else:
            unsent[1] += 1
        if self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._send_unsent())

    async def _send_unsent(self) -> None:
        """Send what was let through to the shared buckets, one pipeline at a time,
        until nothing is left; each key's copy takes on the answer."""
        try:
            while self._unsent:
                sending, self._unsent = self._unsent, {}
                try:
                    answers = await self._spend_all(sending)
                except (RedisError, RedisClusterException) as error:
                    self._redis_failed(error)
                    return
                for (key, (interval, _)), full_in in zip(sending.items(), answers, strict=True):
                    if not isinstance(full_in, Exception):
                        self._heard(key, interval, int(full_in))
        finally:
            self._sending = None

    async def _spend_all(self, sending: dict[str, list[int]]) -> list[Any]:
        """Each key's answer (microseconds until its bucket is full), or the error its
        script got. On one Redis server a script counts many keys' tokens in at once;
        on a cluster each key's bucket is in its own slot, so each is its own script."""
        per_script = 1 if self._buckets_apart else _SPENDS_PER_SCRIPT
        items = list(sending.items())
        groups = [items[i : i + per_script] for i in range(0, len(items), per_script)]
        for attempt in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for group in groups:
                    pipe.evalsha(
                        self._spend.sha,
                        len(group),
                        *(_shared_key(key) for key, _ in group),
                        *(n for _, (interval, count) in group for n in (interval, count)),
                    )
                replies: list[Any] = await pipe.execute(raise_on_error=False)
            if attempt or not any(isinstance(r, NoScriptError) for r in replies):
                return [
                    answer
                    for group, reply in zip(groups, replies, strict=True)
                    for answer in ([reply] * len(group) if isinstance(reply, Exception) else reply)
                ]
            await self.redis.script_load(_SPEND)  # Redis restarted or flushed its scripts
        raise AssertionError("unreachable")

    def _redis_failed(self, error: Exception) -> None:
        now = time.monotonic()
        self._redis_down_until = now + _RETRY_REDIS_AFTER_SECONDS
        # What Redis did not hear of stays in the copies; after the outage the keys ask
        # Redis first again.
        self._heard_until.clear()
        if now - self._last_failure_logged > _LOG_EVERY_SECONDS:
            self._last_failure_logged = now
            log.warning("rate limits: Redis unavailable; limiting on this replica alone: %s", error)

    async def close(self) -> None:
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
# Where the middleware leaves the decision for the answer's headers.
RATE_LIMIT = "rate_limit"
