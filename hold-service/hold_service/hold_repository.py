"""Holds in Redis: every multi-key change is one Lua script, so it is all-or-nothing.

Key layout (all keys of one resource share the hash tag `{r:<resource>}`, so each
script touches one Redis Cluster slot):

- `cal:{r:RES}:g:N`      one per 5-minute granule the resource is claimed for; value
                         `<owner>|<fingerprint>`; SET NX semantics with a TTL (PX) for a
                         hold, or an absolute expiry (PXAT) at the end of a booking.
- `cal:{r:RES}:h:HOLD`   the hold itself (hash: doc, value, holder, consumed_by).
- `cal:{r:RES}:load:DAY` bookings per staff member and day, for fair assignment.
- `cal:{r:RES}:mv:BOOKING` a reschedule under way: `starts_ms|blocked_ms` of the
                         interval the booking is moved from, until the move is confirmed.
- `cal:hold:HOLD`        where a hold lives: `business|resource|starts_ms|blocked_ms`
                         (another slot: on one server the place script writes it,
                         on a cluster a SET beside the script).
- `cal:claims:pending`   sorted set: bookings whose claim is still pending (consumed,
                         not yet confirmed after commit), scored by when it lapses.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from calendence.logs import log_fields
from calendence.storage import RedisClient, keys_meet_anywhere
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

log = logging.getLogger("hold_service.hold_repository")

Item = TypeVar("Item")
Reply = TypeVar("Reply")

PENDING_CLAIMS_KEY = "cal:claims:pending"

# Places holds, each decided in turn: a hold is placed when every granule of its slot
# is free; a granule holding a hold with the same fingerprint means this request was
# already served (an idempotent retry). One hold per script on a Redis Cluster (a
# script touches one slot), up to _HOLDS_PER_SCRIPT on one Redis server (any keys may
# meet there), so that the call's own cost is paid once per batch.
# For each hold, in order: KEYS: its record, its granules, and, when its locator value
# is given, its locator (written with it); ARGV: its number of KEYS, the granule value
# `<hold id>|<fingerprint>`, its TTL in ms, the fingerprint, the hold document, the
# holder id, the locator's value or '' (a cluster: the locator is in another slot, set
# apart). Returns for each hold {0, ''} placed, {1, earlier hold id} already placed by
# the same request, {2, ''} the slot is taken.
_PLACE = """
local replies = {}
local k, a = 0, 0
for h = 1, #ARGV / 7 do
  local last = k + tonumber(ARGV[a + 1])
  local value, ttl, fingerprint = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local locator = ARGV[a + 7]
  local granules_end = last
  if locator ~= '' then granules_end = last - 1 end
  local reply = nil
  for i = k + 2, granules_end do
    local held = redis.call('GET', KEYS[i])
    if held then
      local sep = string.find(held, '|', 1, true)
      if sep and string.sub(held, sep + 1) == fingerprint then
        reply = {1, string.sub(held, 1, sep - 1)}
      else
        reply = {2, ''}
      end
      break
    end
  end
  if not reply then
    for i = k + 2, granules_end do
      redis.call('SET', KEYS[i], value, 'PX', ttl)
    end
    redis.call('HSET', KEYS[k + 1], 'doc', ARGV[a + 5], 'value', value, 'holder', ARGV[a + 6])
    redis.call('PEXPIRE', KEYS[k + 1], ttl)
    if locator ~= '' then
      redis.call('SET', KEYS[last], locator, 'PX', ttl)
    end
    reply = {0, ''}
  end
  replies[h] = reply
  k, a = last, a + 7
end
return replies
"""
# Holds one _PLACE script decides at most: bounded so that one script never holds Redis
# long (a hold's part takes a few microseconds).
_HOLDS_PER_SCRIPT = 64

# Turns a live hold into a pending claim of `booking` that lapses after ARGV[2] ms
# unless _CONFIRM makes it long: a crash between this and the booking's commit frees
# the slot by itself. The same booking consuming again (a retry) renews the claim.
# KEYS[1]: the hold record; KEYS[2]: the resource's bookings-per-day counter;
# KEYS[3..]: the hold's granules. ARGV[1]: the booking id; ARGV[2]: how long the pending
# claim lasts, in ms; ARGV[3]: the booking's granule value (`booking_value`); ARGV[4]:
# the holder id that must own the hold, or '' for any. Returns {1, hold document}
# consumed, {0, ''} the hold is gone, someone else's, or used by another booking,
# {2, ''} a granule is taken by someone else.
_CONSUME = """
local doc = redis.call('HGET', KEYS[1], 'doc')
if not doc then return {0, ''} end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'holder') ~= ARGV[4] then return {0, ''} end
local consumed = redis.call('HGET', KEYS[1], 'consumed_by')
if consumed and consumed ~= ARGV[1] then return {0, ''} end
-- Granules are the hold's (or this booking's); missing ones mean Redis lost keys and
-- are taken again. Someone else's (Redis lost the hold and another took the slot)
-- win: PostgreSQL's exclusion constraint stays the last line either way.
local value = redis.call('HGET', KEYS[1], 'value')
for i = 3, #KEYS do
  local held = redis.call('GET', KEYS[i])
  if held and held ~= value and held ~= ARGV[3] then return {2, ''} end
end
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], ARGV[3], 'PX', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if not consumed then
  redis.call('HSET', KEYS[1], 'consumed_by', ARGV[1])
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], 172800000)
end
return {1, doc}
"""

# A committed booking's claim, made to last until the booking ends. Without ARGV[3]
# every granule must still be this booking's pending claim, or nothing changes (a
# cancel may have freed them). With it (the repair, for a booking it found committed
# and live under a row lock) lapsed granules and holds are taken too; another
# booking's never. Once the claim lasts, the granules of an interval the booking was
# moved from (a reschedule) are freed, where still the booking's, and the move's
# record deleted if it is still this move's (a later move of the booking may have
# written its own). Answers how many granules are not this booking's now.
# KEYS[1]: the hold record; KEYS[2..ARGV[4]+1]: the booking's granules; then
# ARGV[5] granules it was moved from; then, if any key is left, its move record.
# ARGV[1]: the booking's granule value; ARGV[2]: when the claim ends (Unix ms, the
# booking's blocked end); ARGV[3]: '1' to repair, '0' to confirm only an intact claim;
# ARGV[4]: how many granules are the booking's; ARGV[5]: how many to free; ARGV[6]:
# the move record this move wrote (`starts_ms|blocked_ms` of the interval moved from).
_CONFIRM = """
local last = tonumber(ARGV[4]) + 1
local missing = 0
for i = 2, last do
  local held = redis.call('GET', KEYS[i])
  if held ~= ARGV[1] then
    if ARGV[3] ~= '1' then return last - 1 end
    if held and string.sub(held, 1, 2) == 'b:' then missing = missing + 1 end
  end
end
for i = 2, last do
  local held = redis.call('GET', KEYS[i])
  if not held or string.sub(held, 1, 2) ~= 'b:' or held == ARGV[1] then
    redis.call('SET', KEYS[i], ARGV[1], 'PXAT', ARGV[2])
  end
end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
local freed_last = last + tonumber(ARGV[5])
for i = last + 1, freed_last do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
if #KEYS > freed_last and redis.call('GET', KEYS[#KEYS]) == ARGV[6] then
  redis.call('DEL', KEYS[#KEYS])
end
return missing
"""

# Forget a pending claim only if no retry renewed it since it was looked at.
# KEYS[1]: the pending-claims sorted set. ARGV[1]: the booking id; ARGV[2]: the deadline
# it had when looked at. Returns 1 forgotten, 0 renewed since (or already gone).
_FORGET = """
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""

# Gives a consumed hold back to its holder when its booking could not be written:
# granules still this booking's pending claim become
# the hold's again, and the day's booking count drops.
# KEYS[1]: the hold record; KEYS[2]: the resource's bookings-per-day counter;
# KEYS[3..]: the hold's granules. ARGV[1]: the booking id that consumed it; ARGV[2]:
# when the restored hold expires (Unix ms); ARGV[3]: the booking's granule value.
# Returns 1 restored, 0 the hold was not consumed by this booking.
_RESTORE = """
if redis.call('HGET', KEYS[1], 'consumed_by') ~= ARGV[1] then return 0 end
local value = redis.call('HGET', KEYS[1], 'value')
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[3] then
    redis.call('SET', KEYS[i], value, 'PXAT', ARGV[2])
  end
end
redis.call('HDEL', KEYS[1], 'consumed_by')
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('DECR', KEYS[2])
return 1
"""

# The holder lets go of an unused hold: its granules are freed and the record deleted.
# KEYS[1]: the hold record; KEYS[2..]: the hold's granules. ARGV[1]: the holder id that
# must own the hold, or '' for any. Returns 1 released, 0 gone or already consumed,
# -1 held by someone else.
_RELEASE = """
local value = redis.call('HGET', KEYS[1], 'value')
if not value or redis.call('HEXISTS', KEYS[1], 'consumed_by') == 1 then return 0 end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return -1 end
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == value then redis.call('DEL', KEYS[i]) end
end
redis.call('DEL', KEYS[1])
return 1
"""

# Frees a released booking's granules (only those still the booking's) and, when any
# were and ARGV[3] is '1', takes the booking off the day's count used for fair
# assignment. A reschedule of the booking not confirmed (its process died after the
# commit, or the release committed before the confirmation came) left its move record:
# it is deleted, and its interval answered so that the granules the booking still
# claims there are freed too.
# KEYS[1]: the resource's bookings-per-day counter; KEYS[2..ARGV[2]+1]: the booking's
# granules; the last KEY, if one is left: the booking's move record. ARGV[1]: the
# booking's granule value; ARGV[2]: how many granules; ARGV[3]: '1' to count.
# Returns {1 when something was freed, else 0; the move record or ''}.
_FREE = """
local last = tonumber(ARGV[2]) + 1
local freed = 0
for i = 2, last do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    freed = 1
  end
end
if freed == 1 and ARGV[3] == '1' and tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  redis.call('DECR', KEYS[1])
end
local moved = ''
if #KEYS > last then
  local record = redis.call('GET', KEYS[#KEYS])
  if record then
    moved = record
    redis.call('DEL', KEYS[#KEYS])
  end
end
return {freed, moved}
"""

# The first step of a reschedule, taken under the booking's row lock before the move
# commits in PostgreSQL: the new interval is claimed pending, so that it lapses by
# itself should the move never commit, and the old one stays the booking's until
# _CONFIRM (after the commit) frees it. Each new granule must be free or already the
# booking's (where the two intervals overlap: left as it is). The move's record (the
# interval moved from) tells the repair what to free should the process die between
# the commit and _CONFIRM. Stale granules, left by an earlier move that committed but
# was never confirmed, are freed (only where still the booking's).
# KEYS[1]: the booking's move record; KEYS[2..ARGV[4]+1]: the new interval's granules;
# the KEYS after them: stale granules. ARGV[1]: the booking's granule value; ARGV[2]:
# how long the pending claim lasts, in ms; ARGV[3]: the move record
# (`starts_ms|blocked_ms` of the interval moved from); ARGV[4]: how many KEYS are new
# granules; ARGV[5]: when the record lapses (Unix ms: the end of the interval moved
# from, when its granules lapse too). Returns 1 claimed, 0 taken.
_MOVE = """
local last = tonumber(ARGV[4]) + 1
local free = {}
for i = 2, last do
  local held = redis.call('GET', KEYS[i])
  if held and held ~= ARGV[1] then return 0 end
  free[i] = not held
end
for i = last + 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
for i = 2, last do
  if free[i] then redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
end
redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[5])
return 1
"""


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _tag(resource: str) -> str:
    return "cal:{r:" + resource + "}"


def granule_key(resource: str, granule: int) -> str:
    return f"{_tag(resource)}:g:{granule}"


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def record_key(resource: str, hold_id: str) -> str:
    return f"{_tag(resource)}:h:{hold_id}"


def load_key(resource: str, day: str) -> str:
    return f"{_tag(resource)}:load:{day}"


def hold_keys(
    resource: str, hold_id: str, granules: Iterable[int], day: str | None = None
) -> list[str]:
    """The KEYS of a script on one hold, in the order the scripts read them: the hold
    record, the resource's bookings-per-day counter (for the scripts that count, given
    `day`), then the hold's granules."""
    load = [] if day is None else [load_key(resource, day)]
    return [record_key(resource, hold_id), *load, *(granule_key(resource, g) for g in granules)]


def move_key(resource: str, booking_id: str) -> str:
    return f"{_tag(resource)}:mv:{booking_id}"


def locator_key(hold_id: str) -> str:
    return f"cal:hold:{hold_id}"


def booking_value(booking_id: str) -> str:
    """What a booked granule holds; the fingerprint part can never match a hold's."""
    return f"b:{booking_id}|booking"


@dataclass(frozen=True)
class HoldLocator:
    business_id: str
    resource: str
    starts_ms: int
    blocked_ms: int

    def encoded(self) -> str:
        """As `cal:hold:HOLD` holds it: `business|resource|starts_ms|blocked_ms`."""
        return f"{self.business_id}|{self.resource}|{self.starts_ms}|{self.blocked_ms}"

    @classmethod
    def decoded(cls, text: str) -> HoldLocator:
        business_id, resource, starts_ms, blocked_ms = text.rsplit("|", 3)
        return cls(business_id, resource, int(starts_ms), int(blocked_ms))


@dataclass(frozen=True)
class Placement:
    """One hold to place: its record, the granules it claims, and where it lives."""

    hold_id: str
    holder_id: str
    doc: bytes
    resource: str
    granules: Sequence[int]
    fingerprint: str
    ttl_ms: int
    locator: HoldLocator


@dataclass(frozen=True)
class Consumption:
    """One hold to turn into a booking's pending claim (see _CONSUME)."""

    locator: HoldLocator
    hold_id: str
    granules: Sequence[int]
    booking_id: str
    holder_id: str
    day: str
    pending_ms: int


@dataclass(frozen=True)
class Confirmation:
    """One booking's claim to make last until `blocked_ms` (see _CONFIRM); for a
    reschedule, the granules of the interval it was moved from to free once it does."""

    resource: str
    hold_id: str
    granules: Sequence[int]
    booking_id: str
    blocked_ms: int
    force: bool
    released: Sequence[int] = ()
    # A reschedule's: the interval it moved from, whose move record is deleted with the
    # confirmation (if no later move replaced it).
    moved_from: Interval | None = None


@dataclass(frozen=True)
class Interval:
    """A booking's blocked interval in Unix ms, as a move record keeps it."""

    starts_ms: int
    blocked_ms: int

    def encoded(self) -> str:
        return f"{self.starts_ms}|{self.blocked_ms}"

    @classmethod
    def decoded(cls, text: str) -> Interval:
        starts_ms, blocked_ms = text.split("|")
        return cls(int(starts_ms), int(blocked_ms))


_PLACE_OUTCOMES = {0: "placed", 1: "existing", 2: "conflict"}
_CONSUME_OUTCOMES = {0: "gone", 1: "consumed", 2: "conflict"}


def _place_arguments(
    p: Placement, *, locator_with_it: bool
) -> tuple[list[str], list[str | int | bytes]]:
    """One hold's KEYS and ARGV in a place script (see _PLACE)."""
    keys = hold_keys(p.resource, p.hold_id, p.granules)
    if locator_with_it:
        keys.append(locator_key(p.hold_id))
    located = p.locator.encoded() if locator_with_it else ""
    return keys, [
        len(keys),
        f"{p.hold_id}|{p.fingerprint}",
        p.ttl_ms,
        p.fingerprint,
        p.doc,
        p.holder_id,
        located,
    ]


class HoldRepository:
    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self._place = redis.register_script(_PLACE)
        self._consume = redis.register_script(_CONSUME)
        self._confirm = redis.register_script(_CONFIRM)
        self._forget = redis.register_script(_FORGET)
        self._restore = redis.register_script(_RESTORE)
        self._release = redis.register_script(_RELEASE)
        self._free = redis.register_script(_FREE)
        self._move = redis.register_script(_MOVE)
        # A cluster keeps a hold's locator in another slot than its record, so the place
        # script cannot write both; one server takes both in the script: one command
        # per hold instead of two.
        self._locators_apart = not keys_meet_anywhere(redis)

    async def place_many(
        self, placements: Sequence[Placement]
    ) -> list[tuple[str, str] | Exception]:
        """Try each placement in order, all in one round trip: ('placed', hold_id),
        ('existing', earlier hold_id) or ('conflict', '') each, or the error Redis
        answered that one with. A Redis that cannot answer at all raises.

        On one Redis server, one place script decides up to _HOLDS_PER_SCRIPT holds
        in turn and writes each placed hold's locator too. On a cluster each hold is
        one place script of its own within its
        resource's hash slot (a plain pipeline, never a transaction, so a batch may
        span slots and nodes), and the locator, in another slot, is a SET beside it (if
        the script refuses, the locator points at nothing and expires); a hold placed
        whose locator could not be written (its node down, say) could never be found
        again: it is released at once and answered with the locator's error.
        """
        if not placements:
            return []
        replies = await self._reloading_scripts(
            _PLACE,
            placements,
            self._run_place_pipeline if self._locators_apart else self._run_place_scripts,
            script_reply=lambda r: r[0],
        )
        outcomes: list[tuple[str, str] | Exception] = []
        for placement, (reply, located) in zip(placements, replies, strict=True):
            if isinstance(reply, Exception):
                outcomes.append(reply)
                continue
            code, existing = reply
            outcome = _PLACE_OUTCOMES[int(code)]
            if outcome == "placed" and isinstance(located, Exception):
                await self._unplace(placement)
                outcomes.append(located)
                continue
            outcomes.append((outcome, _text(existing) or placement.hold_id))
        return outcomes

    async def _unplace(self, placement: Placement) -> None:
        """Release a hold just placed whose locator was not written (best effort: if
        its own node cannot answer either, it expires with its TTL)."""
        try:
            await self.release(
                placement.locator, placement.hold_id, placement.granules, placement.holder_id
            )
        except (RedisError, RedisClusterException) as error:
            log.warning(
                "a hold without its locator could not be released; it expires",
                extra=log_fields(hold_id=placement.hold_id, error=repr(error)),
            )

    async def _run_place_pipeline(
        self, placements: Sequence[Placement]
    ) -> list[tuple[Any, Any | None]]:
        """On a cluster: the place script's reply (or error) for each placement, with
        its locator SET's (the locator is in another slot)."""
        # EVALSHA by hand: redis-py's pipeline would first ask SCRIPT EXISTS for a
        # registered script, a second round trip on every batch.
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in placements:
                keys, args = _place_arguments(p, locator_with_it=False)
                pipe.evalsha(self._place.sha, len(keys), *keys, *args)
                pipe.set(locator_key(p.hold_id), p.locator.encoded(), px=p.ttl_ms)
            replies = await pipe.execute(raise_on_error=False)
        # Each script's replies are its one hold's.
        return [
            (reply if isinstance(reply, Exception) else reply[0], located)
            for reply, located in zip(replies[::2], replies[1::2], strict=True)
        ]

    async def _run_place_scripts(
        self, placements: Sequence[Placement]
    ) -> list[tuple[Any, Any | None]]:
        """On one server: each placement's place reply (or its script's error), from
        one place script per _HOLDS_PER_SCRIPT placements, all in one round trip; the
        locators are written by the scripts (None: nothing apart)."""
        groups = [
            placements[i : i + _HOLDS_PER_SCRIPT]
            for i in range(0, len(placements), _HOLDS_PER_SCRIPT)
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                keys: list[str] = []
                args: list[str | int | bytes] = []
                for p in group:
                    held, given = _place_arguments(p, locator_with_it=True)
                    keys += held
                    args += given
                pipe.evalsha(self._place.sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
        return [
            (reply, None)
            for group, replies_of_group in zip(groups, replies, strict=True)
            for reply in (
                [replies_of_group] * len(group)
                if isinstance(replies_of_group, Exception)
                else replies_of_group
            )
        ]

    async def record(self, resource: str, hold_id: str) -> bytes | None:
        doc = await self.redis.hget(record_key(resource, hold_id), "doc")
        return doc if isinstance(doc, bytes) else None

    async def locate_many(self, hold_ids: Sequence[str]) -> list[HoldLocator | None]:
        """Where each hold lives (None for one expired or unknown), in one round trip."""
        if not hold_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for hold_id in hold_ids:
                pipe.get(locator_key(hold_id))
            raws = await pipe.execute()
        return [None if raw is None else HoldLocator.decoded(str(_text(raw))) for raw in raws]

    async def locate(self, hold_id: str) -> HoldLocator | None:
        [locator] = await self.locate_many([hold_id])
        return locator

    async def consume_many(
        self, consumptions: Sequence[Consumption], now_ms: int
    ) -> list[tuple[str, bytes | None] | Exception]:
        """Each hold made its booking's pending claim, all in one round trip:
        ('consumed', doc), ('gone', None) or ('conflict', None) each, or the error Redis
        answered that one with. A Redis that cannot answer at all raises.

        The pending claims are tracked before they exist (one ZADD ahead of the
        scripts), so there is never one the repair cannot see; an entry whose consume
        was refused is forgotten later.
        """
        if not consumptions:
            return []
        replies = await self._reloading_scripts(
            _CONSUME, consumptions, lambda batch: self._run_consume_pipeline(batch, now_ms)
        )
        outcomes: list[tuple[str, bytes | None] | Exception] = []
        for reply in replies:
            if isinstance(reply, Exception):
                outcomes.append(reply)
                continue
            code, doc = reply
            outcome = _CONSUME_OUTCOMES[int(code)]
            outcomes.append((outcome, doc if outcome == "consumed" else None))
        return outcomes

    async def _run_consume_pipeline(
        self, consumptions: Sequence[Consumption], now_ms: int
    ) -> list[Any]:
        """The consume script's reply (or error) for each; the tracking's error for
        every one if it failed (their scripts may have run: their claims lapse)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(
                PENDING_CLAIMS_KEY, {c.booking_id: now_ms + c.pending_ms for c in consumptions}
            )
            for c in consumptions:
                keys = hold_keys(c.locator.resource, c.hold_id, c.granules, c.day)
                pipe.evalsha(
                    self._consume.sha,
                    len(keys),
                    *keys,
                    c.booking_id,
                    c.pending_ms,
                    booking_value(c.booking_id),
                    c.holder_id,
                )
            tracked, *replies = await pipe.execute(raise_on_error=False)
        if isinstance(tracked, Exception):
            return [tracked] * len(consumptions)
        return replies

    async def confirm_many(self, confirmations: Sequence[Confirmation]) -> list[bool | Exception]:
        """Make each booking's claim last until its `blocked_ms`: True when every
        granule is the booking's, False when not (or the error Redis answered). Those
        not True stay tracked as pending, due now, for the repair to look at. Two round
        trips at most, whatever the number."""
        if not confirmations:
            return []
        replies = await self._reloading_scripts(_CONFIRM, confirmations, self._run_confirm_pipeline)
        outcomes: list[bool | Exception] = [
            reply if isinstance(reply, Exception) else int(reply) == 0 for reply in replies
        ]
        unconfirmed = [
            c.booking_id for c, ok in zip(confirmations, outcomes, strict=True) if ok is not True
        ]
        if unconfirmed:
            await self.redis.zadd(PENDING_CLAIMS_KEY, dict.fromkeys(unconfirmed, 0))
        return outcomes

    async def _run_confirm_pipeline(self, confirmations: Sequence[Confirmation]) -> list[Any]:
        """The confirm script's reply (or error) for each; the claims are untracked in
        the same round trip (those not confirmed are tracked again, due now)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for c in confirmations:
                keys = hold_keys(c.resource, c.hold_id, c.granules)
                keys += [granule_key(c.resource, g) for g in c.released]
                if c.moved_from is not None:
                    keys.append(move_key(c.resource, c.booking_id))
                pipe.evalsha(
                    self._confirm.sha,
                    len(keys),
                    *keys,
                    booking_value(c.booking_id),
                    c.blocked_ms,
                    "1" if c.force else "0",
                    len(c.granules),
                    len(c.released),
                    "" if c.moved_from is None else c.moved_from.encoded(),
                )
            pipe.zrem(PENDING_CLAIMS_KEY, *(c.booking_id for c in confirmations))
            *replies, _ = await pipe.execute(raise_on_error=False)
        return replies

    async def _reloading_scripts(
        self,
        source: str,
        items: Sequence[Item],
        run: Callable[[Sequence[Item]], Awaitable[list[Reply]]],
        script_reply: Callable[[Reply], Any] = lambda reply: reply,
    ) -> list[Reply]:
        """`run`'s replies for `items`, one each; the items whose script Redis did not
        know (it restarted or flushed its scripts) are run again once `source` is
        loaded. `script_reply` picks the script's own reply out of an item's."""
        replies = await run(items)
        again = [
            i for i, reply in enumerate(replies) if isinstance(script_reply(reply), NoScriptError)
        ]
        if again:
            await self.redis.script_load(source)
            redone = await run([items[i] for i in again])
            for i, reply in zip(again, redone, strict=True):
                replies[i] = reply
        return replies

    async def pending_claims(self, due_before_ms: int, limit: int) -> list[tuple[str, int]]:
        """(booking id, deadline in ms) of pending claims due before the given time."""
        rows: list[Any] = await self.redis.zrangebyscore(
            PENDING_CLAIMS_KEY, "-inf", due_before_ms, start=0, num=limit, withscores=True
        )
        return [(str(_text(member)), int(score)) for member, score in rows]

    async def forget_claim(self, booking_id: str, deadline_ms: int) -> None:
        await self._forget(keys=[PENDING_CLAIMS_KEY], args=[booking_id, deadline_ms])

    async def restore(
        self,
        locator: HoldLocator,
        hold_id: str,
        granules: Sequence[int],
        booking_id: str,
        day: str,
        expires_ms: int,
    ) -> bool:
        keys = hold_keys(locator.resource, hold_id, granules, day)
        restored = await self._restore(
            keys=keys, args=[booking_id, expires_ms, booking_value(booking_id)]
        )
        if int(restored) == 1:
            await self.redis.zrem(PENDING_CLAIMS_KEY, booking_id)
        return int(restored) == 1

    async def release(
        self, locator: HoldLocator, hold_id: str, granules: Sequence[int], holder_id: str
    ) -> int:
        """1 released, 0 gone or already used, -1 held by someone else."""
        keys = hold_keys(locator.resource, hold_id, granules)
        return int(await self._release(keys=keys, args=[holder_id]))

    async def free_booking(
        self,
        resource: str,
        granules: Sequence[int],
        booking_id: str,
        day: str,
        *,
        leftovers: bool = False,
    ) -> tuple[bool, Interval | None]:
        """Free a released booking's granules: whether any were freed, and the interval
        a reschedule never confirmed moved it from (its record now deleted), whose
        granules are then freed as `leftovers` (not counted off the day again)."""
        keys = [load_key(resource, day), *(granule_key(resource, g) for g in granules)]
        if not leftovers:
            keys.append(move_key(resource, booking_id))
        freed, moved = await self._free(
            keys=keys,
            args=[booking_value(booking_id), len(granules), "0" if leftovers else "1"],
        )
        record = _text(moved)
        return int(freed) == 1, Interval.decoded(record) if record else None

    async def moves_under_way(self, bookings: Sequence[tuple[str, str]]) -> list[Interval | None]:
        """For each (resource, booking id): the interval a reschedule not yet confirmed
        moves it from, or None; in one round trip."""
        if not bookings:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for resource, booking_id in bookings:
                pipe.get(move_key(resource, booking_id))
            raws = await pipe.execute()
        return [None if raw is None else Interval.decoded(str(_text(raw))) for raw in raws]

    async def move_booking(
        self,
        resource: str,
        booking_id: str,
        *,
        new: Sequence[int],
        stale: Sequence[int],
        moved_from: Interval,
        pending_ms: int,
        now_ms: int,
    ) -> bool:
        """Claim a rescheduled booking's new granules pending (see _MOVE), tracked as a
        pending claim first so that the repair sees it; False when one is taken."""
        keys = [
            move_key(resource, booking_id),
            *(granule_key(resource, g) for g in new),
            *(granule_key(resource, g) for g in stale),
        ]
        # Two round trips: reschedules are rare, and the script object loads itself
        # again into a Redis that lost its scripts.
        await self.redis.zadd(PENDING_CLAIMS_KEY, {booking_id: now_ms + pending_ms})
        moved = await self._move(
            keys=keys,
            args=[
                booking_value(booking_id),
                pending_ms,
                moved_from.encoded(),
                len(new),
                moved_from.blocked_ms,
            ],
        )
        return int(moved) == 1

    async def survey(
        self, resources: Sequence[str], granule_numbers: Sequence[int], day: str
    ) -> list[tuple[int, list[str | None]]]:
        """For each resource in one round trip: its bookings that day, and what holds
        each of the given granules now (None where free)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for resource in resources:
                pipe.get(load_key(resource, day))
                pipe.mget([granule_key(resource, g) for g in granule_numbers])
            answers = await pipe.execute()
        return [
            (int(load or 0), [_text(v) for v in values])
            for load, values in zip(answers[::2], answers[1::2], strict=True)
        ]

    async def claimed(self, wanted: Mapping[str, Iterable[int]]) -> set[tuple[str, int]]:
        """Which of the given granules of each resource are held or booked now, in one
        round trip (an MGET per resource, each within its own hash slot)."""
        asked = [(resource, sorted(numbers)) for resource, numbers in wanted.items()]
        asked = [(resource, numbers) for resource, numbers in asked if numbers]
        async with self.redis.pipeline(transaction=False) as pipe:
            for resource, numbers in asked:
                pipe.mget([granule_key(resource, g) for g in numbers])
            answers = await pipe.execute() if asked else []
        return {
            (resource, number)
            for (resource, numbers), values in zip(asked, answers, strict=True)
            for number, value in zip(numbers, values, strict=True)
            if value is not None
        }
