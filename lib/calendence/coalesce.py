"""Request coalescing: what arrives while earlier calls are in flight goes as one batch.

A caller `submit`s one item and awaits its own outcome. When fewer than `max_in_flight`
batches are under way, a batch leaves at the end of the event loop's turn, with every
item submitted in that turn (requests read from the sockets that were ready together),
so a quiet system pays no waiting beyond the turn; otherwise the item queues, and the
next batch to leave takes everything queued, up to `max_batch` items. Under load a
batch call (one RPC, one Redis pipeline) thus serves many callers, and its fixed cost
is shared among them.

`send` gets the batch's items and returns one outcome per item, in order: a value, or
the exception that item alone failed with (others in the batch are unaffected). If
`send` itself raises, every item of that batch fails with that exception.

An item that is in no hurry may be submitted with `wait_up_to` seconds: it waits in the
queue for the next batch to leave (and goes with it), or leaves alone when that time is
up, so that it costs no call of its own when other items follow soon.

A caller cancelled while queued leaves the queue; one cancelled while its batch is in
flight cannot stop it, so its outcome goes to `on_abandoned` (e.g. to undo work done
for a caller who will never hear of it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

log = logging.getLogger("calendence.coalesce")

Item = TypeVar("Item")
Result = TypeVar("Result")

SendBatch = Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]]


class Coalescer(Generic[Item, Result]):
    def __init__(
        self,
        send: SendBatch[Item, Result],
        *,
        max_in_flight: int = 2,
        max_batch: int = 64,
        on_abandoned: Callable[[Item, Result], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        if max_in_flight < 1 or max_batch < 1:
            raise ValueError("max_in_flight and max_batch must be at least 1")
        self._send = send
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self._on_abandoned = on_abandoned
        self._queue: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._aftermath: set[asyncio.Task[None]] = set()
        # When the items in no hurry leave anyway, if no batch took them before.
        self._deadline: asyncio.TimerHandle | None = None
        # The end of this turn's launch, once asked for: items submitted meanwhile join it.
        self._launch_due: asyncio.Handle | None = None
        # How many batches and items have left: the mean batch size, for the curious.
        self.batches_sent = 0
        self.items_sent = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def submit(self, item: Item, *, wait_up_to: float = 0.0) -> Result:
        """The outcome of `item`: its value, or the exception it failed with. With
        `wait_up_to`, the item may wait that many seconds for a batch to go with."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.append((item, future))
        if wait_up_to > 0:
            due = loop.time() + wait_up_to
            if self._deadline is None or self._deadline.when() > due:
                if self._deadline is not None:
                    self._deadline.cancel()
                self._deadline = loop.call_at(due, self._time_is_up)
        elif len(self._in_flight) < self.max_in_flight:
            self._launch_at_end_of_turn()
        return await future

    def _launch_at_end_of_turn(self) -> None:
        # call_soon runs after the callbacks already due, so the requests this turn
        # reads submit first and leave in one batch instead of one call each.
        if self._launch_due is None:
            self._launch_due = asyncio.get_running_loop().call_soon(self._launch_queued)

    def _launch_queued(self) -> None:
        self._launch_due = None
        while self._queue and len(self._in_flight) < self.max_in_flight:
            self._launch()

    def _time_is_up(self) -> None:
        self._deadline = None
        if len(self._in_flight) < self.max_in_flight:
            self._launch()

    def _launch(self) -> None:
        if self._deadline is not None:  # whatever waited goes now
            self._deadline.cancel()
            self._deadline = None
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        while self._queue and len(batch) < self.max_batch:
            entry = self._queue.popleft()
            if not entry[1].cancelled():  # its caller gave up while it queued
                batch.append(entry)
        if not batch:
            return
        # In the context of the caller that launched it: a lone item (a quiet system)
        # keeps its own request id all the way, and a batch carries its first one's.
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._queue:
            self._launch_at_end_of_turn()

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        items = [item for item, _ in batch]
        self.batches_sent += 1
        self.items_sent += len(items)
        outcomes: Sequence[Result | BaseException]
        try:
            outcomes = await self._send(items)
            if len(outcomes) != len(items):
                raise RuntimeError(f"a batch of {len(items)} got {len(outcomes)} outcomes")
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.cancel()
            raise
        except Exception as error:  # the whole batch failed: so does each item
            outcomes = [error] * len(items)
        for (item, future), outcome in zip(batch, outcomes, strict=True):
            if future.cancelled():
                if not isinstance(outcome, BaseException):
                    self._abandoned(item, outcome)
            elif isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _abandoned(self, item: Item, outcome: Result) -> None:
        if self._on_abandoned is None:
            return
        task = asyncio.get_running_loop().create_task(self._on_abandoned(item, outcome))
        self._aftermath.add(task)
        task.add_done_callback(self._aftermath.discard)
        task.add_done_callback(_log_failure)

    async def drain(self) -> None:
        """Wait for every batch under way and every undo it started (at shutdown)."""
        while self._in_flight or self._queue or self._aftermath:
            if self._queue and len(self._in_flight) < self.max_in_flight:
                self._launch()
            pending = self._in_flight | self._aftermath
            if pending:
                await asyncio.wait(pending)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("undoing an abandoned item failed: %r", task.exception())
