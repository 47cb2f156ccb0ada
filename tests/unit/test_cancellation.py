"""A loop that retries on Exception still ends when its task is cancelled, even when an
awaited call turned the cancellation into an error of its own."""

from __future__ import annotations

import asyncio

from calendence.cancellation import stop_if_cancelled


class RefusedWhenCancelled:
    """A call that, the first time it is cancelled while it waits, fails with its own
    error instead (as an asyncpg connection attempt refused just as the cancellation
    arrives does); a later cancellation goes through."""

    def __init__(self) -> None:
        self.calls = 0
        self.turned = False

    async def __call__(self) -> None:
        self.calls += 1
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            if self.turned:
                raise
            self.turned = True
            raise ConnectionRefusedError(111, "Connection refused") from None


async def retry_forever(call: RefusedWhenCancelled) -> None:
    while True:
        try:
            await call()
        except Exception as error:
            stop_if_cancelled(error)
        await asyncio.sleep(0.001)


async def test_a_retrying_loop_whose_call_turns_its_cancellation_into_an_error_ends() -> None:
    call = RefusedWhenCancelled()
    loop = asyncio.ensure_future(retry_forever(call))
    await asyncio.sleep(0.01)
    loop.cancel()
    await asyncio.wait({loop}, timeout=5)
    try:
        assert call.turned and loop.cancelled()
        assert call.calls == 1  # it did not go round again
    finally:
        loop.cancel()  # had it gone round, this cancellation goes through
        await asyncio.wait({loop}, timeout=5)


async def test_an_error_in_a_task_nobody_cancelled_is_left_to_the_loop() -> None:
    error = ConnectionRefusedError(111, "Connection refused")
    stop_if_cancelled(error)  # does not raise: the loop logs it and tries again
