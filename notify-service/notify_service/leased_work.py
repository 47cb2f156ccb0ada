"""Work claimed under a lease (webhook attempts, client emails), stopped gracefully."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

Claim = TypeVar("Claim")


async def finish_or_give_back(
    running: Mapping[asyncio.Task[None], Claim],
    grace_seconds: float,
    give_back: Callable[[Claim], Awaitable[object]],
) -> None:
    """Let running work finish within the grace, then cancel the rest and give its
    leases back, so that any replica (or this one, restarted) retries it at once."""
    running = dict(running)
    if running:
        await asyncio.wait(running, timeout=grace_seconds)
    for task, claim in running.items():
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await give_back(claim)
