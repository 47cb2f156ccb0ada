"""What one gRPC hop costs, alone: CPU per call on each side, unary calls against
long-lived streams (multiplexed, as services call, and raw), one hold per message against
a batch of them.

    .venv/bin/python bench/grpc_hop.py            # about a minute
    .venv/bin/python bench/grpc_hop.py --tiny     # a second per case: proves it works

A server process, built as every service builds its own (`calendence.rpc.build_server`:
the error-mapping interceptor, health, the shared channel options, the multiplexed
stream), answers `PlaceHolds` with one placed hold per wanted one and does nothing
else; the same answer also goes through a bidirectional stream. This process calls it
through `calendence.rpc.unary` on a plain channel (unary), through `calendence.rpc.unary`
on `rpc.open_channel`'s channel as every service calls (multiplexed: frames on a few
long-lived streams), or writes and reads on open streams of its own, one per caller
(stream), with `concurrency` callers at once, for `seconds` per case. CPU comes from
/proc for the server and from os.times() for this process, so each side's figure is what
the hop costs a service.

Results: bench/results/grpc-hop-<time>.json and .txt.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import uvloop
from calendence import rpc
from calendence.devstack.processes import ManagedProcess, free_port, wait_for_port
from calendence.hold.v1 import hold_pb2, hold_pb2_grpc
from calendence.rpc import ServicerContext
from calendence.timefmt import to_timestamp
from cpu import cpu_seconds, spent
from results_files import write_results

HERE = Path(__file__).resolve().parent
STREAM_METHOD = "/calendence.bench.Hop/PlaceHoldsStream"


def placed(wanted: hold_pb2.PlaceHoldsRequest) -> hold_pb2.PlaceHoldsResponse:
    return hold_pb2.PlaceHoldsResponse(
        outcomes=[
            hold_pb2.PlaceHoldOutcome(
                hold=hold_pb2.PlacedHold(
                    hold_id="0" * 36,
                    service_id=hold.service_id,
                    location_id=hold.location_id,
                    starts_at=hold.starts_at,
                    ends_at=hold.starts_at,
                    expires_at=hold.starts_at,
                )
            )
            for hold in wanted.holds
        ]
    )


class EchoHolds(hold_pb2_grpc.HoldServiceServicer):
    async def PlaceHolds(
        self, request: hold_pb2.PlaceHoldsRequest, context: ServicerContext
    ) -> hold_pb2.PlaceHoldsResponse:
        return placed(request)


async def place_holds_stream(
    requests: Any, context: ServicerContext
) -> Any:  # an async iterator of PlaceHoldsResponse
    async for wanted in requests:
        yield placed(wanted)


def add_services(server: grpc.aio.Server) -> None:
    # It answers PlaceHolds only: the other methods are never called here.
    hold_pb2_grpc.add_HoldServiceServicer_to_server(EchoHolds(), server)  # type: ignore[abstract]
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "calendence.bench.Hop",
                {
                    "PlaceHoldsStream": grpc.stream_stream_rpc_method_handler(
                        place_holds_stream,
                        request_deserializer=hold_pb2.PlaceHoldsRequest.FromString,
                        response_serializer=hold_pb2.PlaceHoldsResponse.SerializeToString,
                    )
                },
            ),
        )
    )


async def serve(port: int) -> None:
    async def fine() -> None:
        return None

    server = rpc.build_server([add_services], rpc.DependencyHealth({"nothing": fine}), port)
    await server.start()
    await server.wait_for_termination()


@dataclass
class Case:
    kind: str  # "unary", "multiplexed" or "stream"
    holds_per_message: int
    concurrency: int


@dataclass
class Measured:
    case: Case
    messages_per_second: float
    client_us_per_message: float
    server_us_per_message: float
    client_us_per_hold: float
    server_us_per_hold: float


def wanted(holds: int) -> hold_pb2.PlaceHoldsRequest:
    starts = to_timestamp(datetime(2030, 1, 1, 9, tzinfo=UTC))
    return hold_pb2.PlaceHoldsRequest(
        holds=[
            hold_pb2.PlaceHoldRequest(
                business_id="b" * 36,
                holder_id="h" * 36,
                service_id="s" * 36,
                location_id="l" * 36,
                starts_at=starts,
            )
            for _ in range(holds)
        ]
    )


async def measure(
    channel: grpc.aio.Channel,
    multiplexed: grpc.aio.Channel,
    server_pid: int,
    case: Case,
    seconds: float,
) -> Measured:
    stub = hold_pb2_grpc.HoldServiceStub(multiplexed if case.kind == "multiplexed" else channel)
    stream = channel.stream_stream(
        STREAM_METHOD,
        request_serializer=hold_pb2.PlaceHoldsRequest.SerializeToString,
        response_deserializer=hold_pb2.PlaceHoldsResponse.FromString,
    )
    message = wanted(case.holds_per_message)
    sent = 0

    async def unary_caller(until: float) -> None:
        nonlocal sent
        while time.monotonic() < until:
            await rpc.unary(stub.PlaceHolds, message)
            sent += 1

    async def stream_caller(until: float) -> None:
        nonlocal sent
        call = stream()  # type: ignore[call-arg]  # on aio, messages go by write()
        while time.monotonic() < until:
            await call.write(message)
            await call.read()
            sent += 1
        await call.done_writing()
        await call.read()  # the end of the stream

    caller = stream_caller if case.kind == "stream" else unary_caller
    await asyncio.gather(*(caller(time.monotonic() + 0.2) for _ in range(case.concurrency)))
    sent = 0
    client_before, server_before = os.times(), cpu_seconds({"server": server_pid})
    started = time.monotonic()
    await asyncio.gather(*(caller(started + seconds) for _ in range(case.concurrency)))
    elapsed = time.monotonic() - started
    client_after, server_after = os.times(), cpu_seconds({"server": server_pid})
    client = (client_after.user - client_before.user) + (client_after.system - client_before.system)
    server = spent(server_before, server_after)["server"]
    per_message = 1e6 / sent
    return Measured(
        case=case,
        messages_per_second=round(sent / elapsed, 1),
        client_us_per_message=round(client * per_message, 1),
        server_us_per_message=round(server * per_message, 1),
        client_us_per_hold=round(client * per_message / case.holds_per_message, 1),
        server_us_per_hold=round(server * per_message / case.holds_per_message, 1),
    )


CASES = [
    Case("unary", 1, 1),
    Case("unary", 1, 4),
    Case("unary", 1, 16),
    Case("unary", 20, 4),
    Case("multiplexed", 1, 1),
    Case("multiplexed", 1, 4),
    Case("multiplexed", 1, 16),
    Case("multiplexed", 20, 4),
    Case("stream", 1, 1),
    Case("stream", 1, 4),
    Case("stream", 20, 4),
]


def report(results: list[Measured], started_at: str) -> str:
    lines = [
        f"gRPC hop, {started_at}: {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at the end",
        f"{'kind':<12}{'holds/msg':>10}{'callers':>9}{'msgs/s':>9}"
        f"{'client us/msg':>15}{'server us/msg':>15}{'client us/hold':>16}{'server us/hold':>16}",
    ]
    for m in results:
        lines.append(
            f"{m.case.kind:<12}{m.case.holds_per_message:>10}{m.case.concurrency:>9}"
            f"{m.messages_per_second:>9,.0f}{m.client_us_per_message:>15,.0f}"
            f"{m.server_us_per_message:>15,.0f}{m.client_us_per_hold:>16,.1f}"
            f"{m.server_us_per_hold:>16,.1f}"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    server = ManagedProcess(
        "grpc-hop-server",
        [sys.executable, str(HERE / "grpc_hop.py"), "--serve", str(port)],
        log_dir / f"grpc-hop-server-{port}.log",
    )
    try:
        wait_for_port(port, 30, server)
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        results: list[Measured] = []
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            rpc.open_channel(f"127.0.0.1:{port}") as multiplexed,
        ):
            for case in CASES:
                results.append(await measure(channel, multiplexed, server.pid, case, args.seconds))
    finally:
        server.stop()
    summary = report(results, started_at)
    print(summary)
    document = {"started_at": started_at, "seconds": args.seconds}
    write_results(
        args.results_dir, "grpc-hop", document | {"cases": [asdict(m) for m in results]}, summary
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="seconds per case (5)")
    parser.add_argument("--tiny", action="store_true", help="a second per case")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        uvloop.run(serve(args.serve))
        return
    if args.tiny:
        args.seconds = 1.0
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
