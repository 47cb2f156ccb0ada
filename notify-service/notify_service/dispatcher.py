"""The delivery loop every replica runs: claim due deliveries, attempt them, record.

Attempts that ended are recorded by the loop's next call, which also claims what is
due (one round trip): an endpoint's next attempt starts one round trip after the last
one's answer. A batch of new events makes the next claim itself, in the round trip that
stores it (`store_and_claim`): its webhooks go out as soon as it is stored.

It claims only what it has room for (`max_in_flight` per replica; the repository keeps each
endpoint to `per_endpoint` across replicas), so a slow or dead endpoint ties up at most
its own share and never the others' turn. New events wake it at once; retries that
fall due are found by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import timedelta

from calendence.cancellation import stop_if_cancelled
from calendence.logs import access_log, log_fields

from notify_service.delivery_repository import (
    AttemptResult,
    Claim,
    ClaimTurn,
    DeliveryRepository,
    Finished,
    StoredEvents,
)
from notify_service.leased_work import finish_or_give_back
from notify_service.schedule import retry_in

log = logging.getLogger("notify_service.dispatcher")

Attempt = Callable[[Claim], Awaitable[AttemptResult]]
Watermark = Callable[[], Awaitable[int]]
# Stores a batch of events, making the claim it is given (if any) in the same transaction.
StoreEvents = Callable[[ClaimTurn | None], Awaitable[StoredEvents]]

# Completed deliveries are kept this long for the deliveries list.
KEEP_COMPLETED = timedelta(days=30)
_PURGE_EVERY_SECONDS = 3600.0


@dataclass(frozen=True)
class Limits:
    max_in_flight: int
    per_endpoint: int
    poll_seconds: float
    # An attempt not reported within this is taken over by another claim.
    lease: timedelta


class Dispatcher:
    def __init__(
        self,
        repository: DeliveryRepository,
        attempt: Attempt,
        watermark: Watermark,
        limits: Limits,
    ) -> None:
        self.repository = repository
        self.attempt = attempt
        self.watermark = watermark
        self.limits = limits
        self._wake = asyncio.Event()
        self._running: dict[asyncio.Task[None], Claim] = {}
        # Attempts that ended, to be recorded by the next call to the repository.
        self._finished: list[Finished] = []
        self._stopping = False
        self._last_watermark = 0
        self._watermark_stale = True
        self._watermark_at = 0.0
        self._watermark_asking: asyncio.Task[None] | None = None
        # Positions this replica stored at or beyond the watermark: once the gap below
        # them closes, the watermark moves past them without asking JetStream.
        self._stored_ahead: set[int] = set()
        # Set by `store_and_claim` when the store left deliveries to claim, read by
        # the next `events_stored`.
        self._deliveries_stored = False
        self._claiming = False
        # Room promised to claims made by stores under way.
        self._reserved = 0
        # The loop's claim had less room for a store's claim under way: it claims again
        # once that store is back.
        self._cut_short = False
        self._on_idle: list[Callable[[], None]] = []

    def wake(self) -> None:
        self._wake.set()

    def busy(self) -> bool:
        """Attempts are running, being claimed, or new events are stored and about to
        be claimed."""
        return bool(self._running or self._finished) or self._claiming or self._wake.is_set()

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call `callback` each time the last running attempt has finished."""
        self._on_idle.append(callback)

    async def store_and_claim(self, store: StoreEvents, positions: list[int]) -> StoredEvents:
        """Store a batch of events at these stream positions (`store`), making this
        replica's next claim in the same transaction when they make deliveries, and
        start the attempts it claimed. It claims as the loop would: what this replica
        has room for, each endpoint's limit and each booking's order kept, with the
        watermark the batch moves once stored."""
        # Half the room: the loop's own claims, refilling the slots of attempts that
        # end meanwhile, keep the other half.
        room = 0 if self._stopping else (self._room() + 1) // 2
        turn = None
        if room > 0:
            turn = ClaimTurn(
                room, self.limits.per_endpoint, self._watermark_after(positions), self.limits.lease
            )
        self._reserved += room
        try:
            stored = await store(turn)
        finally:
            self._reserved -= room
            if self._cut_short:
                self._cut_short = False
                self.wake()
        self._start(stored.claims)
        made = any(stored.deliveries.values())
        # A claim that came back full may have left some, and one that came back
        # empty may not have been made (another was under way): the loop claims them.
        if made and (turn is None or len(stored.claims) in (0, turn.want)):
            self._deliveries_stored = True
        return stored

    def _room(self) -> int:
        """Attempts this replica may start: those running and those promised count."""
        return self.limits.max_in_flight - len(self._running) - self._reserved

    def _watermark_after(self, positions: list[int]) -> int:
        """The watermark once events at `positions` are stored too (0: not known)."""
        return watermark_past(self._last_watermark, self._stored_ahead.union(positions))

    def events_stored(self, positions: list[int]) -> None:
        """Events (and their deliveries) are stored at these stream positions. When
        they continue the stream right from the watermark (one replica, or this one's
        turn), the watermark moves past them at once; otherwise JetStream is asked
        (another replica stores the events between).

        The loop is woken when there may be something new to claim: deliveries were
        stored, or the stores closed a gap that held stored deliveries back. Events
        no endpoint wanted (a business without webhooks) cost no claim."""
        held_back = bool(self._stored_ahead)
        self._stored_ahead.update(p for p in positions if p >= self._last_watermark)
        self._advance_watermark()
        if self._stored_ahead:
            self._watermark_stale = True
        if self._deliveries_stored or held_back:
            self._deliveries_stored = False
            self._wake.set()

    def _advance_watermark(self) -> None:
        self._last_watermark = watermark_past(self._last_watermark, self._stored_ahead)
        self._stored_ahead = {p for p in self._stored_ahead if p >= self._last_watermark}

    async def run(self) -> None:
        since_purge = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            started = loop.time()
            self._claiming = True
            try:
                await self._claim_and_start()
                if started - since_purge > _PURGE_EVERY_SECONDS:
                    since_purge = started
                    await self.repository.purge_completed(KEEP_COMPLETED)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                stop_if_cancelled(error)
                log.warning("claiming deliveries failed", extra=log_fields(error=repr(error)))
            finally:
                self._claiming = False
            if not self.busy():
                for callback in self._on_idle:
                    callback()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.limits.poll_seconds)

    async def _claim_and_start(self) -> None:
        while True:
            room = 0 if self._stopping else self._room()
            # Only when the store's share left it less than it had room for.
            self._cut_short = self._cut_short or (self._reserved > 0 and room <= 0)
            finished, self._finished = self._finished, []
            if room <= 0 and not finished:
                return
            try:
                claims, disabled = await self.repository.finish_and_claim(
                    finished,
                    max(room, 0),
                    self.limits.per_endpoint,
                    self._watermark(),
                    self.limits.lease,
                )
            except BaseException:
                # Recorded by the next call; should this replica stop first, the
                # leases run out and the deliveries are attempted again.
                self._finished[:0] = finished
                raise
            for ended, reason in disabled:
                log.warning(
                    "endpoint disabled", extra=log_fields(**_attempt_fields(ended), reason=reason)
                )
            self._start(claims)
            if len(claims) < room or room <= 0:
                return

    def _start(self, claims: list[Claim]) -> None:
        for claim in claims:
            task = asyncio.create_task(self._deliver(claim))
            self._running[task] = claim
            task.add_done_callback(self._done)

    def _watermark(self) -> int:
        """The highest stream position below which every event is known stored: moved
        by this replica's own stores, and asked of JetStream when they leave a gap or a
        poll interval after the last asking (other replicas store events too). Asked
        in the background: a claim never waits for the answer, it takes what is known,
        and a higher answer wakes the loop to claim again. The last known one while
        JetStream cannot say (it only grows)."""
        now = asyncio.get_running_loop().time()
        stale = self._watermark_stale or now - self._watermark_at > self.limits.poll_seconds
        if stale and self._watermark_asking is None and not self._stopping:
            self._watermark_asking = asyncio.create_task(self._ask_watermark())
        return self._last_watermark

    async def _ask_watermark(self) -> None:
        try:
            while True:
                # Cleared before asking: events stored while the answer is on its way
                # make it stale again, and it is asked once more.
                self._watermark_stale = False
                asked_at = asyncio.get_running_loop().time()
                try:
                    known = await self.watermark()
                except Exception as error:
                    self._watermark_stale = True
                    log.warning("stream position unknown", extra=log_fields(error=repr(error)))
                    return
                self._watermark_at = asked_at
                if known > self._last_watermark:
                    self._last_watermark = known
                    self._advance_watermark()
                    self.wake()
                if not self._watermark_stale:
                    return
        finally:
            self._watermark_asking = None

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())
        self.wake()

    async def _deliver(self, claim: Claim) -> None:
        result = await self.attempt(claim)
        ended = Finished(claim, result, None if result.succeeded else retry_in(claim.attempt))
        if access_log.wanted(result.latency_ms / 1000, not result.succeeded):
            log.info("webhook attempt", extra=log_fields(**_attempt_fields(ended)))
        self._finished.append(ended)

    async def stop(self, grace_seconds: float) -> None:
        """Stop claiming; let running attempts finish within the grace, then give the
        others' leases back so that any replica (or this one, restarted) retries them
        at once."""
        self._stopping = True
        self.wake()
        if self._watermark_asking is not None:
            self._watermark_asking.cancel()

        async def give_back(claim: Claim) -> None:
            await self.repository.release(claim.lease_token, claim.delivery_id)

        await finish_or_give_back(self._running, grace_seconds, give_back)
        if self._finished:
            # What ended within the grace: recorded now, not attempted again.
            try:
                await self._claim_and_start()
            except Exception as error:
                log.warning("recording attempts failed", extra=log_fields(error=repr(error)))


def watermark_past(watermark: int, stored: Collection[int]) -> int:
    """`watermark` moved past the stream positions `stored` that continue it without a
    gap: every event below the result is stored. 0 (not known yet: JetStream says where
    to start) stays 0."""
    if watermark == 0:
        return 0
    while watermark in stored:
        watermark += 1
    return watermark


def _attempt_fields(ended: Finished) -> dict[str, object]:
    claim, result = ended.claim, ended.result
    return dict(
        delivery_id=str(claim.delivery_id),
        event_id=str(claim.event_id),
        endpoint_id=str(claim.endpoint_id),
        attempt=claim.attempt,
        status=result.status_code,
        ms=result.latency_ms,
        error=result.error,
    )
