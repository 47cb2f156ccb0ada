"""Work whose answer never reached its client is undone.

A handler that changes something on the client's behalf (placing a hold) registers how
to undo it with `undo_unless_delivered`. The outermost middleware, `deliver`, then sends
the answer itself and runs the undo actions when the client cannot have learnt of the
success: the handler or a later layer failed (an exception, or any answer other than
2xx went out instead), or the client was gone before the answer could be written. A
held slot is then free again at once instead of blocked for the hold's lifetime by a
client who never got its id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from calendence.logs import log_fields

log = logging.getLogger("gateway.delivery")

UndoAction = Callable[[], Awaitable[None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UNDO = web.RequestKey("undo_unless_delivered", list[UndoAction])
# The undo actions of requests whose handlers were cancelled (kept until they finish).
_running: set[asyncio.Task[None]] = set()


def undo_unless_delivered(request: web.Request, action: UndoAction) -> None:
    """Run `action` if this request's success answer does not reach its client."""
    request.setdefault(_UNDO, []).append(action)


def forget_with_the_undone(request: web.Request, action: UndoAction) -> None:
    """Run `action` too when this request's work is undone (e.g. forget a record of it).

    Nothing is registered for a request with no undo actions: its work stands.
    """
    if request.get(_UNDO):
        undo_unless_delivered(request, action)


@web.middleware
async def deliver(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except asyncio.CancelledError:
        # The handler was cancelled (its client went away): undo in the background.
        task = asyncio.get_running_loop().create_task(_undo(request, "cancelled"))
        _running.add(task)
        task.add_done_callback(_running.discard)
        raise
    except BaseException:
        await _undo(request, "failed")
        raise
    if not request.get(_UNDO):
        return response
    if not 200 <= response.status < 300:
        await _undo(request, f"answered {response.status}")
        return response
    transport = request.transport
    if transport is None or transport.is_closing():
        await _undo(request, "client gone")
        return response
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        # aiohttp treats the same failure on its own write as a client gone, quietly.
        await _undo(request, "client gone")
    # Delivered: the work stands. The undo actions close over their request, a cycle
    # that would leave every such request to the cyclic collector's longest pauses.
    request.pop(_UNDO, None)
    return response


async def _undo(request: web.Request, why: str) -> None:
    actions = request.pop(_UNDO, [])
    # Last registered first: records of the work go before the work itself.
    for action in reversed(actions):
        try:
            await action()
        except Exception as error:  # each action is tried; a failure is logged, not raised
            log.warning(
                "could not undo a request's work", extra=log_fields(why=why, error=repr(error))
            )
    if actions:
        log.info(
            "undid a request's work: its answer did not reach the client",
            extra=log_fields(why=why, path=request.path),
        )
