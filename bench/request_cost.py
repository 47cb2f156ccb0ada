"""What one request costs each process, by kind of request, through the stack `make run`
starts: the gateway's own work apart from what it asks of the services behind it.

- health: GET /healthz, answered by the gateway alone: its HTTP handling and middleware;
- lookup: GET /api/v1/bookings/<an id that does not exist> with a session token: the
  same, plus authentication and the rate limit, one unary gRPC call to booking-service
  and its PostgreSQL read (answered 404);
- hold:   POST /api/v1/bookings/hold, coalesced into PlaceHolds calls to hold-service.

    .venv/bin/python bench/request_cost.py          # about two minutes
    .venv/bin/python bench/request_cost.py --tiny   # proves it works

Each kind is driven by wrk (bench/load.lua) at saturation, 64 connections, the kinds in
turns, round after round; CPU microseconds per request for each process from /proc, as
`make bench` counts them. Every answer's status is counted; any answer but the one the
kind expects (200, 404, 201) or a socket error fails the run.

Results: bench/results/request-cost-<time>.json and .txt.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import aiohttp
import uvloop
from calendence.devstack.bench import throwaway_stack
from calendence.devstack.stack import LocalStack
from loadgen import Load, Phase, run_phase
from results_files import write_results
from run import (
    STACK_PROCESSES,
    Api,
    create_business,
    first_slot_tomorrow,
    process_roots,
)

HERE = Path(__file__).resolve().parent
KINDS = ("health", "lookup", "hold")
# What each kind counts as answered as it should.
EXPECTED = {"health": "health 200", "lookup": "lookup 404", "hold": "hold 201"}


def failures_of(phase: Phase) -> list[str]:
    statuses = phase.run.statuses
    wrong = {
        k: n
        for k, n in statuses.items()
        if k.split()[0] != "connect" and k != EXPECTED[phase.load.kind]
    }
    # wrk's "status" errors are its count of non-2xx answers: the statuses, counted above.
    errors = {k: n for k, n in phase.run.errors.items() if n and k != "status"}
    return [f"{phase.name}: {wrong or ''} {errors or ''}".strip()] if wrong or errors else []


async def measure(args: argparse.Namespace, stack: LocalStack, scratch: Path) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        business = await create_business(Api(http, stack.gateway_url), stack, 10, args.sessions)
    tokens = scratch / "sessions.txt"
    tokens.write_text("\n".join(business.sessions) + "\n")
    roots = process_roots(stack, {})
    first_slot = first_slot_tomorrow()
    next_slot = 0

    def load(kind: str, seconds: float, order: str = "random") -> Load:
        return business.session_load(
            kind,
            args.connections,
            seconds,
            tokens,
            first_slot=first_slot,
            slot_base=next_slot,
            order=order,
        )

    # Every token makes a request first, so that the gateway has seen each (steady use).
    warm = await run_phase(
        "warm-up", stack.gateway_url, load("lookup", args.warmup, "sequential"), roots
    )
    failures = failures_of(warm)
    per_kind: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    for round_number in range(args.rounds):
        for kind in KINDS:
            phase = await run_phase(
                f"{kind} {round_number + 1}", stack.gateway_url, load(kind, args.seconds), roots
            )
            if kind == "hold":
                next_slot = phase.run.max_slot + 1
            failures += failures_of(phase)
            done = phase.units(EXPECTED[kind])
            per_kind[kind].append(
                {name: phase.cpu.get(name, 0.0) / done * 1e6 for name in (*STACK_PROCESSES, "wrk")}
                | {"requests_per_second": done / phase.run.seconds}
            )
    return {"rounds": per_kind, "failures": failures}


def report(results: dict[str, Any], started_at: str) -> str:
    rounds = results["rounds"]
    shown = [
        name
        for name in (*STACK_PROCESSES, "wrk")
        if any(r[name] >= 0.5 for k in KINDS for r in rounds[k])
    ]
    lines = [
        f"Request cost, {started_at}: {os.cpu_count()} CPUs; CPU microseconds per request, "
        "median of the rounds (each round's in brackets)",
        f"{'process':<18}" + "".join(f"{kind:>30}" for kind in KINDS),
    ]
    for name in ("requests_per_second", *shown):
        cells = []
        for kind in KINDS:
            values = [r[name] for r in rounds[kind]]
            each = " / ".join(f"{v:,.0f}" for v in values)
            cells.append(f"{median(values):,.0f} ({each})")
        label = "requests/s" if name == "requests_per_second" else name
        lines.append(f"{label:<18}" + "".join(f"{cell:>30}" for cell in cells))
    if results["failures"]:
        lines.append("FAILED: " + "; ".join(results["failures"]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the kinds in turn (3)")
    parser.add_argument("--seconds", type=float, default=8, help="seconds per kind and round (8)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--sessions", type=int, default=1000, help="session tokens (1000)")
    parser.add_argument("--warmup", type=float, default=4, help="warm-up seconds (4)")
    parser.add_argument("--tiny", action="store_true", help="one round of 1 s per kind")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.tiny:
        # Few connections for many tokens, as bench/run.py's --tiny: each token's rate
        # limit (10/s, a burst of 40) stays above its share of what a fast machine gets
        # through in the second (64 connections on 200 tokens got 429s at 6,800 holds/s).
        args.rounds, args.seconds, args.sessions, args.warmup = 1, 1, 400, 1
        args.connections = 8
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    with throwaway_stack(keep=False, replicas=1) as stack:
        scratch = stack.state_dir / "bench"
        scratch.mkdir(exist_ok=True)
        results = uvloop.run(measure(args, stack, scratch))
    summary = report(results, started_at)
    print(summary)
    write_results(args.results_dir, "request-cost", {"started_at": started_at, **results}, summary)
    sys.exit(1 if results["failures"] else 0)


if __name__ == "__main__":
    main()
