"""Calls spread over listed replicas one call at a time: `ReplicaChannels`.

A `MultiplexedChannel` sends its calls on a few long-lived streams, and a stream stays
on the replica it was opened on. Opened through one round-robin channel, the streams
of a client that starts while one replica is still connecting all land on the other,
and stay there until they are replaced (`STREAM_AGE_SECONDS`). So when the replicas
are listed (`ip:port,ip:port`), each gets a channel of its own and every call goes to
the next replica whose channel is ready, as gRPC's round robin does for unary calls;
each replica's calls still travel on its own channel's streams.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Sequence
from typing import Any

import grpc

from calendence.rpc.multiplexed_channel import MultiplexedChannel

_READY = grpc.ChannelConnectivity.READY
# The state of the whole: the best any replica is in.
_BEST_FIRST = (
    grpc.ChannelConnectivity.READY,
    grpc.ChannelConnectivity.CONNECTING,
    grpc.ChannelConnectivity.IDLE,
    grpc.ChannelConnectivity.TRANSIENT_FAILURE,
    grpc.ChannelConnectivity.SHUTDOWN,
)


class ReplicaChannels(grpc.aio.Channel):
    """One channel per replica; each call to the next replica that is ready."""

    def __init__(self, replicas: Sequence[MultiplexedChannel]) -> None:
        if not replicas:
            raise ValueError("no replica to call")
        self.replicas = list(replicas)
        self._turns = itertools.count()

    def pick(self) -> int:
        """The replica for the next call: the next ready one in turn; with none ready,
        the next that is not failing (its call waits for it or fails as it would)."""
        start = next(self._turns)
        count = len(self.replicas)
        fallback: int | None = None
        for step in range(count):
            index = (start + step) % count
            state = self.replicas[index].get_state(try_to_connect=True)
            if state is _READY:
                return index
            if fallback is None and state is not grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                fallback = index
        return start % count if fallback is None else fallback

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _SpreadMethod(
            self, [replica.unary_unary(*args, **kwargs) for replica in self.replicas]
        )

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self.replicas[self.pick()].unary_stream(*args, **kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self.replicas[self.pick()].stream_unary(*args, **kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self.replicas[self.pick()].stream_stream(*args, **kwargs)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        states = {replica.get_state(try_to_connect) for replica in self.replicas}
        return next(state for state in _BEST_FIRST if state in states)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        while self.get_state() == last_observed_state:
            changes = [
                asyncio.ensure_future(replica.wait_for_state_change(replica.get_state()))
                for replica in self.replicas
            ]
            try:
                await asyncio.wait(changes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for change in changes:
                    change.cancel()

    async def channel_ready(self) -> None:
        while (state := self.get_state(try_to_connect=True)) is not _READY:
            await self.wait_for_state_change(state)

    async def close(self, grace: float | None = None) -> None:
        await asyncio.gather(*(replica.close(grace) for replica in self.replicas))

    async def __aenter__(self) -> ReplicaChannels:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close(None)


class _SpreadMethod:
    """A unary method as a stub sees it, each call sent to the replica picked for it."""

    def __init__(self, channels: ReplicaChannels, methods: list[Any]) -> None:
        self._channels = channels
        self._methods = methods

    def __call__(self, request: Any, **kwargs: Any) -> Awaitable[Any]:
        return self._methods[self._channels.pick()](request, **kwargs)  # type: ignore[no-any-return]
