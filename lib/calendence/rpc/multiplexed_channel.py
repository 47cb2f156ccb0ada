"""Unary calls sent as frames on long-lived streams: the client of calendence.multiplex.v1.

`MultiplexedChannel` wraps a gRPC channel. Generated stubs and `rpc.unary` use it as
they use any channel; each unary call goes as one `CallFrame` on one of a few streams
it keeps open (see calendence.rpc.multiplexing for why), and what comes back is what
the unary call would have given: the response, or an `AioRpcError` with the same
status, details and trailing metadata. So callers, retries and error mapping stay as
they are. A peer without the Multiplex service gets plain unary calls.

Streams are opened through the channel, so round robin spreads them over the
replicas; each takes new calls for `STREAM_AGE_SECONDS` and is then half-closed (its
calls still answered), well inside the servers' `max_connection_age_grace`. A stream
that breaks fails its calls with UNAVAILABLE, as a broken connection fails unary calls.
A call whose caller gave up before its frame left is never sent; one already sent is
cancelled on the server.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from calendence.logs import REQUEST_ID_METADATA_KEY
from calendence.multiplex.v1.multiplex_pb2 import CallFrame, CallFrames, ReplyFrame, ReplyFrames
from calendence.rpc.multiplexing import CALLS_METHOD

# Streams open at once per channel (and per wait-for-ready choice): enough to spread
# calls over a few replicas, few enough that each carries many calls.
STREAMS_PER_CHANNEL = 4
# How long a stream takes new calls: a server closes a connection after
# max_connection_age and then kills what is still open after a 30 s grace.
STREAM_AGE_SECONDS = 20.0

_STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class _NotMultiplexed(Exception):
    """The peer has no Multiplex service (an older replica): call it the unary way."""


def _rpc_error(
    code: grpc.StatusCode, details: str, trailing: grpc.aio.Metadata | None = None
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), trailing or grpc.aio.Metadata(), details, None
    )


class _Stream:
    """One open Calls stream: frames out through one writer, replies matched by id."""

    def __init__(self, channel: grpc.aio.Channel, *, wait_for_ready: bool) -> None:
        self._call = channel.stream_stream(
            CALLS_METHOD,
            request_serializer=CallFrames.SerializeToString,
            response_deserializer=ReplyFrames.FromString,
        )(None, wait_for_ready=wait_for_ready)
        self._pending: dict[int, asyncio.Future[ReplyFrame]] = {}
        self._ids = itertools.count(1)
        # (frame, the caller's deadline on the monotonic clock); None half-closes.
        self._outgoing: asyncio.Queue[tuple[CallFrame, float | None] | None] = asyncio.Queue()
        self._last_sent = 0
        self._born = time.monotonic()
        self.retired = False
        self.ended = False
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write())
        self._reader = loop.create_task(self._read())

    @property
    def takes_calls(self) -> bool:
        if not self.retired and time.monotonic() - self._born > STREAM_AGE_SECONDS:
            self.retire()
        return not self.retired

    def retire(self) -> None:
        """No new calls; the calls already sent are still answered. With none waiting
        the stream just ends (it may never have connected: a replica long gone)."""
        if not self.retired:
            self.retired = True
            self._outgoing.put_nowait(None)
            if not self._pending:
                self._call.cancel()

    async def call(
        self, method: str, request: bytes, request_id: str, deadline: float | None
    ) -> ReplyFrame:
        call_id = next(self._ids)
        future: asyncio.Future[ReplyFrame] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        frame = CallFrame(call_id=call_id, method=method, request=request, request_id=request_id)
        self._outgoing.put_nowait((frame, deadline))
        try:
            return await future
        except asyncio.CancelledError:
            if call_id <= self._last_sent and not self.ended:
                self._outgoing.put_nowait((CallFrame(call_id=call_id, cancel=True), None))
            raise
        finally:
            self._pending.pop(call_id, None)

    async def _write(self) -> None:
        try:
            # Until the peer is there (a channel waiting for a restarted replica) frames
            # stay queued, so one whose caller gave up meanwhile is never sent.
            await self._call.wait_for_connection()
            while True:
                # Every frame waiting by now goes in one message.
                entries = [await self._outgoing.get()]
                while not self._outgoing.empty() and entries[-1] is not None:
                    entries.append(self._outgoing.get_nowait())
                frames = [self._ready(entry) for entry in entries if entry is not None]
                batch = [frame for frame in frames if frame is not None]
                if batch:
                    await self._call.write(CallFrames(calls=batch))
                if entries[-1] is None:
                    break
            await self._call.done_writing()
        except Exception:  # the stream ended; the reader fails what is pending
            self._call.cancel()

    def _ready(self, entry: tuple[CallFrame, float | None]) -> CallFrame | None:
        """The frame as it leaves now, or None if its caller gave up before."""
        frame, deadline = entry
        if frame.cancel:
            return frame
        if frame.call_id not in self._pending:
            return None
        if deadline is not None:
            frame.timeout_ms = max(1, int((deadline - time.monotonic()) * 1000))
        self._last_sent = frame.call_id
        return frame

    async def _read(self) -> None:
        failure: Exception = _rpc_error(
            grpc.StatusCode.UNAVAILABLE, "the stream to the service ended"
        )
        try:
            async for batch in self._call:
                for reply in batch.replies:
                    if reply.drain:
                        self.retire()
                        continue
                    future = self._pending.get(reply.call_id)
                    if future is not None and not future.done():
                        future.set_result(reply)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                failure = _NotMultiplexed()
            else:
                failure = _rpc_error(
                    grpc.StatusCode.UNAVAILABLE, f"the stream to the service broke: {error.code()}"
                )
        finally:
            self.ended = True
            self.retire()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(failure)

    def on_end(self, callback: Callable[[_Stream], None]) -> None:
        self._reader.add_done_callback(lambda _: callback(self))

    def close(self) -> None:
        self._call.cancel()
        self._writer.cancel()


class MultiplexedChannel(grpc.aio.Channel):
    """A channel whose unary calls travel on a few long-lived streams."""

    def __init__(self, channel: grpc.aio.Channel, streams: int = STREAMS_PER_CHANNEL) -> None:
        self._channel = channel
        self._size = streams
        self._pools: dict[bool, list[_Stream]] = {True: [], False: []}
        self._open: set[_Stream] = set()  # every stream not yet ended, retired ones too
        self._turn = 0
        self.multiplexing = True

    def stream_for(self, *, wait_for_ready: bool) -> _Stream:
        pool = self._pools[wait_for_ready]
        pool[:] = [stream for stream in pool if stream.takes_calls]
        if len(pool) < self._size:
            stream = _Stream(self._channel, wait_for_ready=wait_for_ready)
            pool.append(stream)
            self._open.add(stream)
            stream.on_end(self._open.discard)
            return stream
        self._turn += 1
        return pool[self._turn % len(pool)]

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> Any:
        return _MultiplexedMethod(
            self,
            method,
            request_serializer or (lambda request: request),
            response_deserializer or (lambda response: response),
            self._channel.unary_unary(method, request_serializer, response_deserializer),
        )

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_stream(*args, **kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_unary(*args, **kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_stream(*args, **kwargs)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    async def close(self, grace: float | None = None) -> None:
        for stream in list(self._open):
            stream.close()
        await self._channel.close(grace)

    async def __aenter__(self) -> MultiplexedChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close(None)


class _MultiplexedMethod:
    """A unary method as a stub sees it: called, it gives an awaitable of the response."""

    def __init__(
        self,
        channel: MultiplexedChannel,
        method: str,
        serialize: Callable[[Any], bytes],
        deserialize: Callable[[bytes], Any],
        unary: Any,
    ) -> None:
        self._channel = channel
        self._method = method
        self._serialize = serialize
        self._deserialize = deserialize
        self._unary = unary

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> Awaitable[Any]:
        return self._call(request, timeout, metadata, wait_for_ready)

    async def _call(
        self, request: Any, timeout: float | None, metadata: Any, wait_for_ready: bool | None
    ) -> Any:
        if self._channel.multiplexing:
            try:
                return await self._multiplexed(request, timeout, metadata, bool(wait_for_ready))
            except _NotMultiplexed:
                self._channel.multiplexing = False
        return await self._unary(
            request, timeout=timeout, metadata=metadata, wait_for_ready=wait_for_ready
        )

    async def _multiplexed(
        self, request: Any, timeout: float | None, metadata: Any, wait_for_ready: bool
    ) -> Any:
        request_id = ""
        for key, value in metadata or ():
            if key == REQUEST_ID_METADATA_KEY:
                request_id = str(value)
        deadline = None if timeout is None else time.monotonic() + timeout
        stream = self._channel.stream_for(wait_for_ready=wait_for_ready)
        try:
            async with asyncio.timeout(timeout):
                reply = await stream.call(
                    self._method, self._serialize(request), request_id, deadline
                )
        except TimeoutError:
            raise _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded") from None
        if reply.status:
            raise _rpc_error(
                _STATUS_BY_NUMBER.get(reply.status, grpc.StatusCode.UNKNOWN),
                reply.details,
                grpc.aio.Metadata(*reply.trailing.items()),
            )
        return self._deserialize(reply.response)
