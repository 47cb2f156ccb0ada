"""Loops that retry whatever fails must still end when their task is cancelled.

An awaited call can turn its task's cancellation into an ordinary exception: an asyncpg
connection attempt failing just as the cancellation arrives raises the connection's
error, not CancelledError. A loop that retries on Exception then goes on for ever, and
the service, told to stop, never exits (seen: booking-service's outbox relay, with
PostgreSQL going down together with the stack, every time under load). The task still
knows that it was asked to stop (`Task.cancelling`), so each such loop asks it.
"""

from __future__ import annotations

import asyncio


def stop_if_cancelled(error: BaseException) -> None:
    """Raise CancelledError, caused by `error`, if the running task has been cancelled:
    for the `except Exception` of a loop that retries."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from error
