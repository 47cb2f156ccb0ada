"""Start-up objects are frozen once a service starts waiting for its shutdown signal."""

from __future__ import annotations

import asyncio
import gc
import os
import signal

from calendence import rpc


def test_waiting_for_the_signal_freezes_what_start_up_built() -> None:
    gc.unfreeze()
    built_at_start_up = [[i] for i in range(1000)]

    async def wait_then_signal() -> int:
        waiter = asyncio.ensure_future(rpc.wait_for_shutdown_signal())
        await asyncio.sleep(0)  # the waiter runs up to its wait
        frozen = gc.get_freeze_count()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(waiter, 5)
        return frozen

    try:
        frozen = asyncio.run(wait_then_signal())
        assert frozen >= len(built_at_start_up)
    finally:
        gc.unfreeze()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(
                sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
            )
