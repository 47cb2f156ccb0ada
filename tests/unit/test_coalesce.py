"""Request coalescing: what arrives while calls are in flight leaves as one batch."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from calendence.coalesce import Coalescer
from calendence.errors import HoldConflict, Unavailable


@dataclass
class Backend:
    """A batch call that answers when told to: each batch waits for `release`."""

    batches: list[list[int]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    concurrent: int = 0
    most_concurrent: int = 0
    fail_with: BaseException | None = None

    async def send(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(list(items))
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            await self.release.wait()
        finally:
            self.concurrent -= 1
        if self.fail_with is not None:
            raise self.fail_with
        # Odd items are refused, each on its own; even ones answered doubled.
        return [HoldConflict(f"{i} is taken") if i % 2 else i * 2 for i in items]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_item_leaves_at_once_in_a_batch_of_its_own() -> None:
    backend = Backend()
    backend.release.set()
    coalescer: Coalescer[int, int] = Coalescer(backend.send)
    assert await coalescer.submit(4) == 8
    assert backend.batches == [[4]]


async def test_items_submitted_in_one_loop_turn_leave_in_one_batch_while_room_remains() -> None:
    backend = Backend()
    backend.release.set()
    coalescer: Coalescer[int, int] = Coalescer(backend.send, max_in_flight=2)
    together = [asyncio.ensure_future(coalescer.submit(i)) for i in (0, 2, 4)]
    assert await asyncio.gather(*together) == [0, 4, 8]
    assert backend.batches == [[0, 2, 4]]


async def test_items_that_arrive_while_batches_are_in_flight_leave_together() -> None:
    backend = Backend()
    coalescer: Coalescer[int, int] = Coalescer(backend.send, max_in_flight=2)
    first = []
    for i in (0, 2):  # in turns of their own, so each leaves at once in a batch of its own
        first.append(asyncio.ensure_future(coalescer.submit(i)))
        await settle()
    later = [asyncio.ensure_future(coalescer.submit(i)) for i in (4, 6, 8)]
    await settle()
    assert backend.batches == [[0], [2]] and coalescer.queued == 3
    backend.release.set()
    assert await asyncio.gather(*first, *later) == [0, 4, 8, 12, 16]
    assert backend.batches == [[0], [2], [4, 6, 8]]


async def test_no_more_than_max_in_flight_batches_are_ever_under_way() -> None:
    backend = Backend()
    coalescer: Coalescer[int, int] = Coalescer(backend.send, max_in_flight=2, max_batch=3)
    waiting = [asyncio.ensure_future(coalescer.submit(i * 2)) for i in range(20)]
    await settle()
    backend.release.set()
    await asyncio.gather(*waiting)
    assert backend.most_concurrent == 2
    assert sorted(i for batch in backend.batches for i in batch) == [i * 2 for i in range(20)]


async def test_a_batch_takes_at_most_max_batch_items_in_arrival_order() -> None:
    backend = Backend()
    coalescer: Coalescer[int, int] = Coalescer(backend.send, max_in_flight=1, max_batch=3)
    waiting = [asyncio.ensure_future(coalescer.submit(i * 2)) for i in range(8)]
    await settle()
    backend.release.set()
    await asyncio.gather(*waiting)
    assert backend.batches == [[0, 2, 4], [6, 8, 10], [12, 14]]


async def test_an_item_that_fails_does_not_fail_the_others_in_its_batch() -> None:
    backend = Backend()
    coalescer: Coalescer[int, int] = Coalescer(backend.send, max_in_flight=1)
    blocker = asyncio.ensure_future(coalescer.submit(0))
    await settle()
    batch = [asyncio.ensure_future(coalescer.submit(i)) for i in (2, 3, 4)]
    await settle()
    backend.release.set()
    await blocker
    outcomes = await asyncio.gather(*batch, return_exceptions=True)
    assert backend.batches[1] == [2, 3, 4]
    assert outcomes[0] == 4 and outcomes[2] == 8
    assert isinstance(outcomes[1], HoldConflict) and outcomes[1].detail == "3 is taken"


async def test_when_the_batch_call_fails_every_item_of_that_batch_fails_with_it() -> None:
    backend = Backend(fail_with=Unavailable("the store cannot answer"))
    coalescer: Coalescer[int, int] = Coalescer(backend.send, max_in_flight=1)
    waiting = [asyncio.ensure_future(coalescer.submit(i * 2)) for i in range(4)]
    await settle()
    backend.release.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(o, Unavailable) for o in outcomes)
    # The next batch is tried afresh.
    backend.fail_with = None
    assert await coalescer.submit(10) == 20


async def test_a_caller_that_gives_up_while_queued_is_left_out_of_the_batch() -> None:
    backend = Backend()
    coalescer: Coalescer[int, int] = Coalescer(backend.send, max_in_flight=1)
    blocker = asyncio.ensure_future(coalescer.submit(0))
    await settle()
    gone = asyncio.ensure_future(coalescer.submit(2))
    kept = asyncio.ensure_future(coalescer.submit(4))
    await settle()
    gone.cancel()
    backend.release.set()
    assert list(await asyncio.gather(blocker, kept)) == [0, 8]
    assert backend.batches == [[0], [4]]


async def test_an_outcome_whose_caller_left_during_its_batch_goes_to_on_abandoned() -> None:
    backend = Backend()
    abandoned: list[tuple[int, int]] = []

    async def undo(item: int, outcome: int) -> None:
        abandoned.append((item, outcome))

    coalescer: Coalescer[int, int] = Coalescer(backend.send, on_abandoned=undo)
    gone = asyncio.ensure_future(coalescer.submit(6))
    await settle()
    gone.cancel()
    backend.release.set()
    await coalescer.drain()
    assert abandoned == [(6, 12)]


async def test_a_batch_answered_with_the_wrong_number_of_outcomes_fails_each_item() -> None:
    async def short(items: list[int]) -> Sequence[int | BaseException]:
        return []

    coalescer: Coalescer[int, int] = Coalescer(short)
    with pytest.raises(RuntimeError, match="a batch of 1 got 0 outcomes"):
        await coalescer.submit(1)


def test_a_coalescer_needs_room_for_at_least_one_item() -> None:
    async def send(items: list[int]) -> Sequence[int | BaseException]:
        return items

    with pytest.raises(ValueError):
        Coalescer(send, max_in_flight=0)
    with pytest.raises(ValueError):
        Coalescer(send, max_batch=0)


async def test_a_lone_item_is_sent_in_its_callers_context() -> None:
    caller = contextvars.ContextVar("caller", default="nobody")
    seen: list[str] = []

    async def send(items: list[int]) -> Sequence[int | BaseException]:
        seen.append(caller.get())
        return items

    coalescer: Coalescer[int, int] = Coalescer(send)
    caller.set("request-1")
    assert await coalescer.submit(1) == 1
    assert seen == ["request-1"]


async def queued_in_no_hurry(
    coalescer: Coalescer[int, int], item: int, seconds: float = 60
) -> asyncio.Future[int]:
    """`item` submitted with `wait_up_to=seconds`, once it waits in the queue."""
    waiting = asyncio.ensure_future(coalescer.submit(item, wait_up_to=seconds))
    await settle()
    return waiting


async def test_an_item_in_no_hurry_goes_with_the_next_item_submitted() -> None:
    backend = Backend()
    backend.release.set()
    coalescer: Coalescer[int, int] = Coalescer(backend.send)
    patient = await queued_in_no_hurry(coalescer, 2)
    assert backend.batches == [] and coalescer.queued == 1
    assert await coalescer.submit(4) == 8
    assert await patient == 4
    assert backend.batches == [[2, 4]]


async def test_an_item_in_no_hurry_leaves_alone_when_its_time_is_up() -> None:
    backend = Backend()
    backend.release.set()
    coalescer: Coalescer[int, int] = Coalescer(backend.send)
    assert await asyncio.wait_for(coalescer.submit(6, wait_up_to=0.01), timeout=5) == 12
    assert backend.batches == [[6]]


async def test_items_in_no_hurry_still_wait_for_room_when_their_time_is_up() -> None:
    backend = Backend()
    coalescer: Coalescer[int, int] = Coalescer(backend.send, max_in_flight=1)
    busy = asyncio.ensure_future(coalescer.submit(0))
    await settle()
    patient = asyncio.ensure_future(coalescer.submit(2, wait_up_to=0.01))
    await asyncio.sleep(0.05)
    assert backend.batches == [[0]] and coalescer.queued == 1
    backend.release.set()
    assert list(await asyncio.gather(busy, patient)) == [0, 4]
    assert backend.batches == [[0], [2]]


async def test_an_item_in_less_of_a_hurry_does_not_hold_back_one_in_more() -> None:
    backend = Backend()
    backend.release.set()
    coalescer: Coalescer[int, int] = Coalescer(backend.send)
    patient = await queued_in_no_hurry(coalescer, 2)
    hurried = coalescer.submit(4, wait_up_to=0.01)
    assert list(await asyncio.wait_for(asyncio.gather(patient, hurried), timeout=5)) == [4, 8]
    assert backend.batches == [[2, 4]]
