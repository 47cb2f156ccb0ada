"""The delivery loop every replica runs: claim due deliveries, attempt them, record.

Attempts that ended are recorded by the loop's next call, which also claims what is
due (one round trip): an endpoint's next attempt starts one round trip after the last
one's answer.

It claims only what it has room for (`max_in_flight` per replica; the repository keeps each
endpoint to `per_endpoint` across replicas), so a slow or dead endpoint ties up at most
its own share and never the others' turn. New events wake it at once; retries that
fall due are found by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from calendence.cancellation import stop_if_cancelled
from calendence.logs import access_log, log_fields

from notify_service.delivery_repository import AttemptResult, Claim, DeliveryRepository, Finished
from notify_service.leased_work import finish_or_give_back
from notify_service.schedule import retry_in

log = logging.getLogger("notify_service.dispatcher")

Attempt = Callable[[Claim], Awaitable[AttemptResult]]
Watermark = Callable[[], Awaitable[int]]

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
        # Set by `deliveries_stored`, read by the next `events_stored`.
        self._deliveries_stored = False
        self._claiming = False
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

    def deliveries_stored(self) -> None:
        """The events about to be reported by `events_stored` made deliveries."""
        self._deliveries_stored = True

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
        if self._last_watermark == 0:  # not known yet: JetStream says where to start
            return
        while self._last_watermark in self._stored_ahead:
            self._stored_ahead.discard(self._last_watermark)
            self._last_watermark += 1
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
            room = 0 if self._stopping else self.limits.max_in_flight - len(self._running)
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
            for claim in claims:
                task = asyncio.create_task(self._deliver(claim))
                self._running[task] = claim
                task.add_done_callback(self._done)
            if len(claims) < room or room <= 0:
                return

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
