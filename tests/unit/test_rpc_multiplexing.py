"""Unary calls on long-lived streams (`rpc.open_channel`'s `MultiplexedChannel`) mean
what unary calls mean: the same answers and errors, deadlines, cancellation, a server
that drains or dies, and a peer that does not multiplex; and calls to listed replicas
go to each in turn (`ReplicaChannels`), as unary calls did. Real gRPC servers on free
ports, built as every service builds its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from calendence import rpc
from calendence.devstack.processes import free_port
from calendence.errors import HoldConflict, NotFound, Unavailable
from calendence.hold.v1 import hold_pb2, hold_pb2_grpc
from calendence.logs import request_id_var
from calendence.rpc import multiplexed_channel
from calendence.rpc import server as rpc_server
from calendence.rpc.multiplexed_channel import MultiplexedChannel
from calendence.rpc.replica_channels import ReplicaChannels


@dataclass
class Seen:
    """What the handlers saw, for the tests to check."""

    released: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    go_on: asyncio.Event = field(default_factory=asyncio.Event)


class Holds(hold_pb2_grpc.HoldServiceServicer):
    """ConsumeHold answers by the hold id it is given: `missing-*` is not found,
    `taken-*` conflicts, `slow-*` waits until the test says go on; any other is
    released and echoed back with the caller's request id."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def ConsumeHold(
        self, request: hold_pb2.ConsumeHoldRequest, context: rpc.ServicerContext
    ) -> hold_pb2.PlacedHold:
        hold_id = request.hold_id
        if hold_id.startswith("missing-"):
            raise NotFound(f"no hold {hold_id}")
        if hold_id.startswith("taken-"):
            raise HoldConflict("the slot is taken", fields={"starts_at": "taken"})
        if hold_id.startswith("slow-"):
            self.seen.started.set()
            try:
                await self.seen.go_on.wait()
            except asyncio.CancelledError:
                self.seen.cancelled.append(hold_id)
                raise
        self.seen.released.append(hold_id)
        return hold_pb2.PlacedHold(hold_id=hold_id, holder_id=request_id_var.get())


async def _fine() -> None:
    return None


async def _start_server(seen: Seen, port: int) -> grpc.aio.Server:
    server = rpc.build_server(
        [
            lambda s: hold_pb2_grpc.add_HoldServiceServicer_to_server(
                Holds(seen),  # type: ignore[abstract]  # only ConsumeHold is called
                s,
            )
        ],
        rpc.DependencyHealth({"redis": _fine}),
        port,
    )
    await server.start()
    return server


@pytest.fixture
async def seen() -> Seen:
    return Seen()


@pytest.fixture
async def port() -> int:
    return free_port()


@pytest.fixture
async def server(seen: Seen, port: int) -> AsyncIterator[grpc.aio.Server]:
    started = await _start_server(seen, port)
    yield started
    await started.stop(None)


@pytest.fixture
async def stub(port: int) -> AsyncIterator[hold_pb2_grpc.HoldServiceAsyncStub]:
    channel = rpc.open_channel(f"127.0.0.1:{port}")
    yield hold_pb2_grpc.HoldServiceStub(channel)
    await channel.close(None)


def _consume(hold_id: str) -> hold_pb2.ConsumeHoldRequest:
    return hold_pb2.ConsumeHoldRequest(hold_id=hold_id)


async def _slow_call_under_way(
    stub: hold_pb2_grpc.HoldServiceAsyncStub, seen: Seen, hold_id: str
) -> asyncio.Future[hold_pb2.PlacedHold]:
    """A `slow-*` call, once its handler has started (it waits for `seen.go_on`)."""
    call = asyncio.ensure_future(rpc.unary(stub.ConsumeHold, _consume(hold_id)))
    await asyncio.wait_for(seen.started.wait(), 5)
    return call


async def test_open_channel_sends_unary_calls_on_streams(port: int) -> None:
    channel = rpc.open_channel(f"127.0.0.1:{port}")
    assert isinstance(channel, MultiplexedChannel)
    await channel.close(None)


async def test_a_call_gets_its_answer_with_the_callers_request_id(
    server: grpc.aio.Server, stub: hold_pb2_grpc.HoldServiceAsyncStub
) -> None:
    token = request_id_var.set("req-from-the-gateway")
    try:
        answer = await rpc.unary(stub.ConsumeHold, _consume("h-1"))
    finally:
        request_id_var.reset(token)
    assert answer.hold_id == "h-1"
    assert answer.holder_id == "req-from-the-gateway"


async def test_a_domain_error_comes_back_as_the_same_error_with_its_fields(
    server: grpc.aio.Server, stub: hold_pb2_grpc.HoldServiceAsyncStub
) -> None:
    with pytest.raises(NotFound, match="no hold missing-1"):
        await rpc.unary(stub.ConsumeHold, _consume("missing-1"))
    with pytest.raises(HoldConflict) as raised:
        await rpc.unary(stub.ConsumeHold, _consume("taken-1"))
    assert raised.value.fields == {"starts_at": "taken"}


async def test_a_failed_call_carries_the_status_a_unary_call_would(
    server: grpc.aio.Server, stub: hold_pb2_grpc.HoldServiceAsyncStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ConsumeHold(_consume("missing-2"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "no hold missing-2"


async def test_an_unknown_method_is_unimplemented_as_a_unary_call_to_it_would_be(
    server: grpc.aio.Server, port: int
) -> None:
    channel = rpc.open_channel(f"127.0.0.1:{port}")
    unknown = channel.unary_unary(
        "/calendence.hold.v1.HoldService/NoSuchMethod",
        request_serializer=hold_pb2.ConsumeHoldRequest.SerializeToString,
        response_deserializer=hold_pb2.PlacedHold.FromString,
    )
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await unknown(_consume("h-unknown"), timeout=5)
    finally:
        await channel.close(None)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_many_more_concurrent_calls_than_streams_each_get_their_own_answer(
    server: grpc.aio.Server, stub: hold_pb2_grpc.HoldServiceAsyncStub, seen: Seen
) -> None:
    hold_ids = [f"h-{n}" if n % 3 else f"missing-{n}" for n in range(600)]
    outcomes = await asyncio.gather(
        *(rpc.unary(stub.ConsumeHold, _consume(hold_id)) for hold_id in hold_ids),
        return_exceptions=True,
    )
    for hold_id, outcome in zip(hold_ids, outcomes, strict=True):
        if hold_id.startswith("missing-"):
            assert isinstance(outcome, NotFound) and hold_id in str(outcome)
        else:
            assert isinstance(outcome, hold_pb2.PlacedHold) and outcome.hold_id == hold_id
    assert sorted(seen.released) == sorted(h for h in hold_ids if h.startswith("h-"))


async def test_a_call_past_its_deadline_fails_and_its_handler_is_cancelled(
    server: grpc.aio.Server, stub: hold_pb2_grpc.HoldServiceAsyncStub, seen: Seen
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ConsumeHold(_consume("slow-deadline"), timeout=0.3)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await _eventually(lambda: seen.cancelled == ["slow-deadline"])
    assert seen.released == []


async def test_a_caller_that_gives_up_cancels_the_call_on_the_server(
    server: grpc.aio.Server, stub: hold_pb2_grpc.HoldServiceAsyncStub, seen: Seen
) -> None:
    call = asyncio.ensure_future(stub.ConsumeHold(_consume("slow-given-up"), timeout=30))
    await asyncio.wait_for(seen.started.wait(), 5)
    call.cancel()
    await _eventually(lambda: seen.cancelled == ["slow-given-up"])
    # The stream the call went on still serves the next calls.
    assert (await rpc.unary(stub.ConsumeHold, _consume("h-after"))).hold_id == "h-after"


async def test_streams_past_their_age_hand_over_to_new_ones_without_failing_a_call(
    server: grpc.aio.Server,
    stub: hold_pb2_grpc.HoldServiceAsyncStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(multiplexed_channel, "STREAM_AGE_SECONDS", 0.05)

    async def caller(name: str) -> list[str]:
        answered = []
        for n in range(25):
            answered.append((await rpc.unary(stub.ConsumeHold, _consume(f"h-{name}-{n}"))).hold_id)
            await asyncio.sleep(0.01)
        return answered

    names = [str(n) for n in range(6)]
    answers = await asyncio.gather(*(caller(name) for name in names))
    assert answers == [[f"h-{name}-{n}" for n in range(25)] for name in names]
    # Each stream took calls for 50 ms of the run's 250 or more: several replaced it.
    assert rpc_server._multiplexers[server].streams_served >= 8


async def test_a_draining_server_answers_its_calls_in_flight_and_new_calls_still_go_through(
    seen: Seen, port: int, stub: hold_pb2_grpc.HoldServiceAsyncStub
) -> None:
    first = await _start_server(seen, port)
    in_flight = await _slow_call_under_way(stub, seen, "slow-draining")
    rpc_server._multiplexers[first].drain()
    stopping = asyncio.ensure_future(first.stop(10))
    await asyncio.sleep(0.2)
    seen.go_on.set()
    assert (await asyncio.wait_for(in_flight, 5)).hold_id == "slow-draining"
    await stopping
    # The replacement (a restarted replica, here on the same port) takes the next call.
    second = await _start_server(seen, port)
    try:
        answer = await rpc.unary(stub.ConsumeHold, _consume("h-next"), wait_for_ready=True)
        assert answer.hold_id == "h-next"
    finally:
        await second.stop(None)


async def test_a_server_gone_mid_call_fails_the_call_as_unavailable(
    seen: Seen, port: int, stub: hold_pb2_grpc.HoldServiceAsyncStub
) -> None:
    server = await _start_server(seen, port)
    in_flight = await _slow_call_under_way(stub, seen, "slow-killed")
    await server.stop(None)  # no grace: what runs is cut off, as a killed process's calls
    with pytest.raises(Unavailable):
        await asyncio.wait_for(in_flight, 5)


async def test_a_call_whose_deadline_passed_before_the_server_came_up_never_runs(
    seen: Seen, port: int, stub: hold_pb2_grpc.HoldServiceAsyncStub
) -> None:
    with pytest.raises(Unavailable):  # nothing listens yet: it waits, then gives up
        await rpc.unary(stub.ConsumeHold, _consume("h-too-late"), timeout=0.5, wait_for_ready=True)
    server = await _start_server(seen, port)
    try:
        answer = await rpc.unary(stub.ConsumeHold, _consume("h-in-time"), wait_for_ready=True)
        assert answer.hold_id == "h-in-time"
        assert seen.released == ["h-in-time"]
    finally:
        await server.stop(None)


async def test_a_peer_without_the_multiplex_service_gets_unary_calls(
    seen: Seen, port: int, stub: hold_pb2_grpc.HoldServiceAsyncStub
) -> None:
    # An older replica: the hold service alone, no Multiplex beside it.
    plain = grpc.aio.server()
    hold_pb2_grpc.add_HoldServiceServicer_to_server(Holds(seen), plain)  # type: ignore[abstract]
    plain.add_insecure_port(f"127.0.0.1:{port}")
    await plain.start()
    try:
        first = await stub.ConsumeHold(_consume("h-plain-1"), timeout=5)
        second = await stub.ConsumeHold(_consume("h-plain-2"), timeout=5)
    finally:
        await plain.stop(None)
    assert (first.hold_id, second.hold_id) == ("h-plain-1", "h-plain-2")
    assert seen.released == ["h-plain-1", "h-plain-2"]


async def _eventually(condition: object, seconds: float = 5.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


async def _until_ready(channel: ReplicaChannels, index: int) -> None:
    """Wait until the channel to replica `index` is connected (it reconnects by itself)."""
    replica = channel.replicas[index]
    async with asyncio.timeout(10):
        while (state := replica.get_state(try_to_connect=True)) != grpc.ChannelConnectivity.READY:
            await replica.wait_for_state_change(state)


async def _served(stub: hold_pb2_grpc.HoldServiceAsyncStub, calls: int) -> None:
    for n in range(calls):
        await rpc.unary(stub.ConsumeHold, _consume(f"spread-{n}"))


async def test_listed_replicas_get_a_channel_each() -> None:
    channel = rpc.open_channel("127.0.0.1:1,127.0.0.1:2")
    try:
        assert isinstance(channel, ReplicaChannels)
        assert len(channel.replicas) == 2
        assert all(isinstance(replica, MultiplexedChannel) for replica in channel.replicas)
    finally:
        await channel.close(None)


@dataclass
class TwoReplicas:
    seen: tuple[Seen, Seen]
    servers: list[grpc.aio.Server]
    channel: ReplicaChannels

    @property
    def stub(self) -> hold_pb2_grpc.HoldServiceAsyncStub:
        return hold_pb2_grpc.HoldServiceStub(self.channel)


@pytest.fixture
async def replicas() -> AsyncIterator[TwoReplicas]:
    """Two servers, both up and connected to through one channel listing both."""
    seen = (Seen(), Seen())
    ports = [free_port(), free_port()]
    servers = [await _start_server(seen[0], ports[0]), await _start_server(seen[1], ports[1])]
    channel = rpc.open_channel(",".join(f"127.0.0.1:{port}" for port in ports))
    assert isinstance(channel, ReplicaChannels)
    for index in (0, 1):
        await _until_ready(channel, index)
    yield TwoReplicas(seen, servers, channel)
    await channel.close(None)
    for server in servers:
        await server.stop(None)


async def test_calls_alternate_between_listed_replicas(replicas: TwoReplicas) -> None:
    await _served(replicas.stub, 40)
    assert [len(seen.released) for seen in replicas.seen] == [20, 20]


async def test_a_replica_that_comes_up_late_gets_its_share_at_once() -> None:
    # Streams opened while the second replica was still away stay on the first; the
    # calls do not: each goes to a ready replica in turn.
    first, second = Seen(), Seen()
    ports = [free_port(), free_port()]
    servers = [await _start_server(first, ports[0])]
    channel = rpc.open_channel(",".join(f"127.0.0.1:{port}" for port in ports))
    assert isinstance(channel, ReplicaChannels)
    stub = hold_pb2_grpc.HoldServiceStub(channel)
    try:
        await _served(stub, 10)
        assert len(first.released) == 10
        servers.append(await _start_server(second, ports[1]))
        await _until_ready(channel, 1)
        await _served(stub, 40)
    finally:
        await channel.close(None)
        for server in servers:
            await server.stop(None)
    assert len(second.released) >= 15, (len(first.released), len(second.released))


async def test_calls_avoid_a_replica_that_is_gone(replicas: TwoReplicas) -> None:
    await replicas.servers[1].stop(None)
    gone = replicas.channel.replicas[1]
    async with asyncio.timeout(10):
        while (state := gone.get_state()) == grpc.ChannelConnectivity.READY:
            await gone.wait_for_state_change(state)
    await _served(replicas.stub, 20)  # none of them fails
    assert len(replicas.seen[0].released) == 20
