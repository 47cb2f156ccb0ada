"""Serving unary calls as frames on long-lived streams (calendence.multiplex.v1).

A unary gRPC call costs both ends an HTTP/2 stream, headers each way and a deadline
timer: on this platform's hops that was the largest cost of a request that is not a
hold. `MultiplexedChannel` (calendence.rpc.multiplexed_channel) sends each unary call
as one `CallFrame` on a stream it keeps open (the frames waiting to go leave together,
in one `CallFrames` message); `Multiplexer` answers it with the same handler a unary
call reaches, through the same `answer_call`, so a call means the same and fails the
same whichever way it came. Calls on one stream run concurrently; each reply goes back
as soon as its call finishes, with any others ready by then.

Shutting down, `drain` sends every open stream a drain frame: its client opens a new
stream for new calls and half-closes this one; the server answers every call it read,
then ends the stream, all within the server's grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import grpc

from calendence.logs import REQUEST_ID_METADATA_KEY, log_fields
from calendence.multiplex.v1.multiplex_pb2 import CallFrame, CallFrames, ReplyFrame, ReplyFrames
from calendence.rpc.handling import CallFailed, answer_call

log = logging.getLogger("calendence.rpc")

SERVICE = "calendence.multiplex.v1.Multiplex"
CALLS_METHOD = f"/{SERVICE}/Calls"
DRAIN = ReplyFrame(drain=True)

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    GenericHandler: TypeAlias = grpc.GenericRpcHandler[Any, Any]
else:  # the grpc classes are not subscriptable at run time
    Handler = grpc.RpcMethodHandler
    GenericHandler = grpc.GenericRpcHandler


class _CallDetails(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class HandlerRecorder:
    """Stands in for a server while the services register on it: passes each
    registration on and keeps the handlers, so that a method is found by its name."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server
        self._generic: list[GenericHandler] = []
        self._found: dict[str, Handler | None] = {}

    @property
    def server(self) -> grpc.aio.Server:
        return cast(grpc.aio.Server, self)

    def add_generic_rpc_handlers(self, handlers: Sequence[GenericHandler]) -> None:
        self._generic.extend(handlers)
        self._server.add_generic_rpc_handlers(handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def lookup(self, method: str) -> Handler | None:
        """The unary handler of `/package.Service/Method`, or None."""
        if method not in self._found:
            details = _CallDetails(method)
            found = None
            for generic in self._generic:
                found = generic.service(details)
                if found is not None:
                    break
            self._found[method] = found if found is not None and found.unary_unary else None
        return self._found[method]


class _CallContext:
    """What a handler may ask of its call, for a call that came as a frame."""

    def __init__(self, request_id: str) -> None:
        self._metadata = ((REQUEST_ID_METADATA_KEY, request_id),)
        self._code: grpc.StatusCode | None = None
        self._details = ""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> None:
        raise CallFailed(code, details, trailing_metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def unanswered(self) -> CallFailed | None:
        """A status the handler set without aborting, as a unary call would end with it."""
        if self._code is None or self._code == grpc.StatusCode.OK:
            return None
        return CallFailed(self._code, self._details)


def _unchanged(message: Any) -> Any:
    return message


def _forget(running: dict[int, asyncio.Task[None]], call_id: int, _: object) -> None:
    running.pop(call_id, None)


def _failure(call_id: int, failed: CallFailed) -> ReplyFrame:
    return ReplyFrame(
        call_id=call_id,
        status=failed.code.value[0],
        details=failed.details,
        trailing={
            key: value if isinstance(value, bytes) else value.encode()
            for key, value in failed.trailing
        },
    )


class Multiplexer:
    """The Multiplex service of one server: every unary handler `lookup` finds, by name."""

    def __init__(self, lookup: Callable[[str], Handler | None]) -> None:
        self._lookup = lookup
        self._replies: set[asyncio.Queue[ReplyFrame | None]] = set()
        self.draining = False
        self.streams_served = 0

    def rpc_handler(self) -> GenericHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Calls": grpc.stream_stream_rpc_method_handler(
                    self.calls,
                    request_deserializer=CallFrames.FromString,
                    response_serializer=ReplyFrames.SerializeToString,
                )
            },
        )

    def drain(self) -> None:
        """Ask every client to take new calls elsewhere (the server is stopping)."""
        self.draining = True
        for replies in self._replies:
            replies.put_nowait(DRAIN)

    async def calls(
        self, frames: AsyncIterator[CallFrames], context: object
    ) -> AsyncIterator[ReplyFrames]:
        replies: asyncio.Queue[ReplyFrame | None] = asyncio.Queue()
        running: dict[int, asyncio.Task[None]] = {}
        self.streams_served += 1
        self._replies.add(replies)
        if self.draining:
            replies.put_nowait(DRAIN)
        reader = asyncio.get_running_loop().create_task(self._read(frames, replies, running))
        try:
            while True:
                # Every reply ready by now goes in one message.
                batch = [await replies.get()]
                while not replies.empty() and batch[-1] is not None:
                    batch.append(replies.get_nowait())
                ready = [reply for reply in batch if reply is not None]
                if ready:
                    yield ReplyFrames(replies=ready)
                if batch[-1] is None:
                    return
        finally:
            # The client went away or the server's grace ran out: what is still running
            # is cancelled, as a unary call's handler is when its call ends.
            self._replies.discard(replies)
            reader.cancel()
            for task in list(running.values()):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(
        self,
        frames: AsyncIterator[CallFrames],
        replies: asyncio.Queue[ReplyFrame | None],
        running: dict[int, asyncio.Task[None]],
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for batch in frames:
                for frame in batch.calls:
                    if frame.cancel:
                        task = running.get(frame.call_id)
                        if task is not None:
                            task.cancel()
                        continue
                    task = loop.create_task(self._answer(frame, replies))
                    running[frame.call_id] = task
                    task.add_done_callback(functools.partial(_forget, running, frame.call_id))
            # Half-closed by the client: answer what was read, then end the stream.
            while running:
                await asyncio.wait(list(running.values()))
        finally:
            replies.put_nowait(None)

    async def _answer(self, frame: CallFrame, replies: asyncio.Queue[ReplyFrame | None]) -> None:
        call_id = frame.call_id
        handler = self._lookup(frame.method)
        inner = handler.unary_unary if handler is not None else None
        if handler is None or inner is None:
            replies.put_nowait(
                _failure(call_id, CallFailed(grpc.StatusCode.UNIMPLEMENTED, "no such method"))
            )
            return
        deserialize = handler.request_deserializer or _unchanged
        serialize = handler.response_serializer or _unchanged
        context = _CallContext(frame.request_id)
        try:
            request = deserialize(frame.request)
            timeout = frame.timeout_ms / 1000 if frame.timeout_ms else None
            async with asyncio.timeout(timeout):
                response = await answer_call(
                    frame.method, inner, request, context, frame.request_id
                )
            unanswered = context.unanswered()
            if unanswered is not None:
                raise unanswered
            reply = ReplyFrame(call_id=call_id, response=serialize(response))
        except CallFailed as failed:
            reply = _failure(call_id, failed)
        except TimeoutError:
            reply = _failure(
                call_id, CallFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
            )
        except asyncio.CancelledError:
            return  # the caller gave up or went away: nobody waits for an answer
        except Exception:  # a request or response that does not (de)serialise
            log.exception("a multiplexed call failed", extra=log_fields(method=frame.method))
            reply = _failure(call_id, CallFailed(grpc.StatusCode.INTERNAL, "internal error"))
        replies.put_nowait(reply)
