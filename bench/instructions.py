"""Instructions per request, counted: what one request costs a service process in CPU
instructions (valgrind's callgrind), a figure that does not move with the machine's load,
for changes smaller than the timed benches' swing.

    .venv/bin/python bench/instructions.py          # about four minutes
    .venv/bin/python bench/instructions.py --tiny   # proves it works

On a throw-away stack set up as `make run`'s, one more process of the measured service
runs under callgrind with counting off: for the gateway, a gateway on a port of its own;
for hold-service, a hold-service and a gateway (not counted) that sends it its holds.
Every session token makes a request first; then, for each kind of request, a warm-up,
then counting on for one wrk run (closed loop) and off again. Reported: the instructions
the process executed per answered request, in its own code and every library's. The
kernel's work for it (system calls: socket reads and writes, epoll) is not counted; the
timed benches (`request_cost.py`, `run.py`) include it.

Under callgrind the measured process runs 20-50 times slower than it does alone, so it
is the stack's bottleneck and its calls coalesce as they do at saturation. Runs of the
same code agree within a few per cent; a change is worth reading when it moves the
count by more than that.

Results: bench/results/instructions-<time>.json and .txt.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from calendence.devstack.bench import throwaway_stack
from calendence.devstack.processes import ManagedProcess, free_port, wait_for_port
from calendence.devstack.stack import LocalStack
from loadgen import WrkRun, run_phase
from results_files import write_results
from run import Api, Business, create_business, first_slot_tomorrow

HERE = Path(__file__).resolve().parent
# The kinds of request measured on each process, and the answer each must get.
KINDS = {"gateway": ("health", "lookup", "hold"), "hold-service": ("hold",)}
EXPECTED = {"health": "health 200", "lookup": "lookup 404", "hold": "hold 201"}
MODULES = {"gateway": "gateway", "hold-service": "hold_service"}
STARTUP_SECONDS = 300  # imports run 5-10 times slower under valgrind, even counting off
DUMP_SECONDS = 60
COUNTED_RUNS = 5  # at most, while none of them is answered (each twice the last)


@dataclass
class Counted:
    """A service process under callgrind, counting only when asked."""

    process: ManagedProcess
    dumps: Path

    def control(self, *args: str) -> None:
        subprocess.run(
            ["callgrind_control", *args, str(self.process.pid)], check=True, capture_output=True
        )

    def counting(self) -> Counting:
        return Counting(self)


class Counting:
    """`async with counted.counting() as counting:` counts what the process runs
    inside; `counting.instructions` after."""

    def __init__(self, counted: Counted) -> None:
        self.counted = counted
        self.instructions = 0

    async def __aenter__(self) -> Counting:
        self.counted.control("--instr=on")
        self.counted.control("--zero")
        return self

    async def __aexit__(self, *exc: object) -> None:
        before = set(self.counted.dumps.glob("callgrind.out.*"))
        self.counted.control("--dump")
        self.counted.control("--instr=off")
        deadline = time.monotonic() + DUMP_SECONDS
        while not (new := set(self.counted.dumps.glob("callgrind.out.*")) - before):
            if time.monotonic() > deadline:
                raise RuntimeError("callgrind wrote no dump")
            await asyncio.sleep(0.2)
        self.instructions = _total_instructions(new.pop())


def _total_instructions(dump: Path) -> int:
    for _ in range(50):  # the file may still be being written
        for line in dump.read_text().splitlines():
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
        time.sleep(0.1)
    raise RuntimeError(f"no totals in {dump}")


async def measure_process(
    name: str,
    stack: LocalStack,
    args: argparse.Namespace,
    tokens: Path,
    business: Business,
    next_slot: list[int],
) -> tuple[dict[str, Any], list[str]]:
    scratch = stack.state_dir / "instructions" / name
    scratch.mkdir(parents=True)
    port = free_port()
    env = {**stack.env, "GATEWAY_PORT": str(port), "HOLD_SERVICE_PORT": str(port)}
    under_callgrind = ManagedProcess(
        f"{name} under callgrind",
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={scratch}/callgrind.out.%p",
            sys.executable,
            "-m",
            MODULES[name],
        ],
        scratch / "callgrind.log",
        env=env,
    )
    others: list[ManagedProcess] = []
    try:
        wait_for_port(port, STARTUP_SECONDS, under_callgrind)
        url = f"http://127.0.0.1:{port}"
        if name == "hold-service":  # a gateway of its own sends this one its holds
            gateway_port = free_port()
            gateway_env = {
                **stack.env,
                "GATEWAY_PORT": str(gateway_port),
                "HOLD_SERVICE_ADDR": f"127.0.0.1:{port}",
            }
            others.append(
                ManagedProcess(
                    "gateway",
                    [sys.executable, "-m", "gateway"],
                    scratch / "gateway.log",
                    env=gateway_env,
                )
            )
            wait_for_port(gateway_port, 60, others[0])
            url = f"http://127.0.0.1:{gateway_port}"
        counted = Counted(under_callgrind, scratch)
        return await measure_kinds(counted, url, KINDS[name], args, tokens, business, next_slot)
    finally:
        for process in (*others, under_callgrind):
            process.stop(timeout=60)


async def measure_kinds(
    counted: Counted,
    url: str,
    kinds: tuple[str, ...],
    args: argparse.Namespace,
    tokens: Path,
    business: Business,
    next_slot: list[int],
) -> tuple[dict[str, Any], list[str]]:
    """`next_slot`: the first slot no earlier hold took (each process's holds go after)."""
    first_slot = first_slot_tomorrow()

    async def phase(kind: str, seconds: float, order: str = "random") -> Any:
        load = business.session_load(
            kind,
            args.connections,
            seconds,
            tokens,
            first_slot=first_slot,
            slot_base=next_slot[0],
            order=order,
            threads=1,
        )
        done = await run_phase(kind, url, load, {})
        if kind == "hold":
            next_slot[0] = done.run.max_slot + 1
        return done

    failures: list[str] = []
    # Every token once (the gateway caches each key as in steady use): counted off.
    await phase("lookup", args.token_seconds, "sequential")
    per_kind: dict[str, Any] = {}
    for kind in kinds:
        await phase(kind, args.warmup)
        async with counted.counting() as counting:
            seconds = args.seconds
            runs = [(await phase(kind, seconds)).run]
            # Counting on makes callgrind translate the process's code again: on a busy
            # machine its first seconds can answer nothing, so it counts on until a run does.
            # Each run is twice as long as the last: a request wrk drops unanswered at a
            # run's end is still worked through by the process, so runs too short for a
            # round of requests would only pile up more.
            while not runs[-1].statuses[EXPECTED[kind]] and len(runs) < COUNTED_RUNS:
                seconds *= 2
                runs.append((await phase(kind, seconds)).run)
        measured = WrkRun.combined(runs)
        answered = measured.statuses[EXPECTED[kind]]
        others = {k: n for k, n in measured.statuses.items() if k != EXPECTED[kind]}
        errors = {k: n for k, n in measured.errors.items() if n and k != "status"}
        if others or errors or not answered:
            failures.append(f"{kind}: {others or ''} {errors or ''} answered {answered}")
        per_kind[kind] = {
            "answered": answered,
            "instructions": counting.instructions,
            "per_request": counting.instructions / answered if answered else 0.0,
        }
    return per_kind, failures


async def measure(args: argparse.Namespace, stack: LocalStack) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        business = await create_business(Api(http, stack.gateway_url), stack, 10, args.sessions)
    tokens = stack.state_dir / "sessions.txt"
    tokens.write_text("\n".join(business.sessions) + "\n")
    processes: dict[str, Any] = {}
    failures: list[str] = []
    next_slot = [0]
    for name in args.processes:
        processes[name], failed = await measure_process(
            name, stack, args, tokens, business, next_slot
        )
        failures += [f"{name} {failure}" for failure in failed]
    return {"processes": processes, "failures": failures}


def report(results: dict[str, Any], started_at: str, args: argparse.Namespace) -> str:
    lines = [
        f"Instructions per request, {started_at}: callgrind, counted while wrk ran "
        f"({args.seconds:g} s, {args.connections} connections) on the process under it",
        f"{'process':<16}{'kind':<10}{'answered':>10}{'instructions per request':>28}",
    ]
    for name, kinds in results["processes"].items():
        for kind, counted in kinds.items():
            lines.append(
                f"{name:<16}{kind:<10}{counted['answered']:>10,}{counted['per_request']:>28,.0f}"
            )
    if results["failures"]:
        lines.append("FAILED: " + "; ".join(results["failures"]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--processes",
        nargs="+",
        choices=tuple(KINDS),
        default=list(KINDS),
        help="the processes to count (all)",
    )
    parser.add_argument("--seconds", type=float, default=20, help="counted seconds per kind (20)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--sessions", type=int, default=300, help="session tokens (300)")
    parser.add_argument("--warmup", type=float, default=5, help="warm-up seconds per kind (5)")
    parser.add_argument(
        "--token-seconds", type=float, default=10, help="seconds for every token's first request"
    )
    parser.add_argument("--tiny", action="store_true", help="a few seconds per kind")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.tiny:
        # Few connections: under callgrind a request takes a tenth of a second or more, and
        # 32 at once would not see one answered within a tiny run on a slow machine.
        args.seconds, args.warmup, args.sessions, args.token_seconds = 2, 1, 50, 3
        args.connections = 4
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed: `make bench-instructions` installs it")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    with throwaway_stack(keep=False, replicas=1) as stack:
        results = uvloop.run(measure(args, stack))
    summary = report(results, started_at, args)
    print(summary)
    document = {"started_at": started_at, "settings": vars(args) | {"results_dir": None}}
    write_results(args.results_dir, "instructions", document | results, summary)
    sys.exit(1 if results["failures"] else 0)


if __name__ == "__main__":
    main()
