"""One measured phase: wrk with bench/load.lua against a URL, and the CPU every process
spent on it, counted from the start until the stack is quiet again (work a request
leaves behind, such as an outbox relay or a webhook, belongs to it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpu import cpu_seconds, runs_between, spent, thread_schedules, waited_between

HERE = Path(__file__).resolve().parent
LOAD_SCRIPT = HERE / "load.lua"
QUIET_CPU_SHARE = 0.05  # of one core, over QUIET_WINDOW: the stack has settled
QUIET_WINDOW = 0.5
QUIET_LIMIT = 20.0


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is missing: `make bench` installs it (apt-get install wrk)")
    return found


@dataclass
class WrkRun:
    """What one wrk run reported (see done() in load.lua)."""

    statuses: Counter[str] = field(default_factory=Counter)
    latencies_us: list[float] = field(default_factory=list)
    answered: list[tuple[str, float, float, int]] = field(default_factory=list)
    booked: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wrk_latency_us: dict[str, int] = field(default_factory=dict)
    max_slot: int = -1
    seconds: float = 0.0

    @classmethod
    def combined(cls, runs: list[WrkRun]) -> WrkRun:
        """Several wrk processes that ran side by side (one per gateway) as one."""
        if len(runs) == 1:
            return runs[0]
        run = cls()
        for part in runs:
            run.statuses.update(part.statuses)
            run.latencies_us += part.latencies_us
            run.answered += part.answered
            run.booked += part.booked
            for name, number in part.errors.items():
                run.errors[name] = run.errors.get(name, 0) + number
            for quantile, value in part.wrk_latency_us.items():
                run.wrk_latency_us[quantile] = max(run.wrk_latency_us.get(quantile, 0), value)
            run.max_slot = max(run.max_slot, part.max_slot)
            run.seconds = max(run.seconds, part.seconds)
        return run

    @classmethod
    def parse(cls, text: str) -> WrkRun:
        run = cls()
        for line in text.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "status":
                what, status, number = rest.split()
                run.statuses[f"{what} {status}"] += int(number)
            elif kind == "latency_us":
                run.latencies_us.append(float(rest))
            elif kind == "answered":
                booking_id, scheduled, answered, status = rest.split()
                run.answered.append((booking_id, float(scheduled), float(answered), int(status)))
            elif kind == "booked":
                run.booked.append(rest)
            elif kind == "error":
                name, number = rest.split()
                run.errors[name] = int(number)
            elif kind == "wrk_latency_us":
                quantile, value = rest.split()
                run.wrk_latency_us[quantile] = int(value)
            elif kind == "max_slot":
                run.max_slot = max(run.max_slot, int(rest))
            elif kind == "duration_us":
                run.seconds = int(rest) / 1e6
        return run


@dataclass
class Load:
    """How to drive wrk: see the header of bench/load.lua for kind and mode."""

    kind: str  # hold | book | cancel
    mode: str  # closed | open
    connections: int
    seconds: float
    rate: float = 0.0
    tokens_file: Path | None = None
    ids: list[str] = field(default_factory=list)
    service_id: str = ""
    location_id: str = ""
    first_slot: int = 0
    slot_base: int = 0
    slot_seconds: int = 300  # how far apart consecutive slots start (the service's length)
    threads: int = 2
    token_order: str = "random"  # or "sequential": every token in turn (warm-ups)
    # A closed loop with a drain starts no new unit after `seconds`, and wrk runs this
    # much longer for what is under way to finish (a booking whose hold was answered
    # included), so that the stack's work and the answers counted are the same units;
    # the rate counts over `seconds`. Without one, wrk stops mid-request: with hundreds
    # of connections, a share of what the stack did is never counted.
    drain_seconds: float = 0.0


@dataclass
class Phase:
    """A wrk run and the CPU seconds of each process tree while it and its aftermath ran."""

    name: str
    load: Load
    run: WrkRun
    cpu: dict[str, float]
    wall: float
    # What the stores answered meanwhile (store_counts.STORE_COUNTS), when counted.
    counts: dict[str, float] = field(default_factory=dict)
    # Seconds each process tree's threads waited for a core while wrk ran.
    waited: dict[str, float] = field(default_factory=dict)
    # Times each process tree's threads were put on a core while wrk ran (wake-ups).
    runs: dict[str, float] = field(default_factory=dict)

    def units(self, outcome: str) -> int:
        return self.run.statuses[outcome]

    def five_hundreds(self) -> dict[str, int]:
        return {
            key: number
            for key, number in self.run.statuses.items()
            if key.split()[1].startswith("5")
        }

    def unexpected_client_errors(self) -> dict[str, int]:
        """4xx answers other than 409 (a taken slot, which races expect)."""
        return {
            key: number
            for key, number in self.run.statuses.items()
            if key.split()[1].startswith("4") and key.split()[1] != "409"
        }

    def counts_per(self, units: int) -> dict[str, float]:
        return {name: round(n / units, 2) for name, n in self.counts.items()} if units else {}

    def cpu_us_per(self, units: int) -> dict[str, float]:
        return _us_per_unit(self.cpu, units)

    def waited_us_per(self, units: int) -> dict[str, float]:
        return _us_per_unit(self.waited, units)

    def runs_per(self, units: int) -> dict[str, float]:
        return {name: round(n / units, 1) for name, n in self.runs.items()} if units else {}


def _us_per_unit(seconds: dict[str, float], units: int) -> dict[str, float]:
    return {name: value * 1e6 / units for name, value in seconds.items()} if units else {}


async def settle(roots: dict[str, int]) -> None:
    """Wait until the stack spends almost no CPU (or QUIET_LIMIT passes)."""
    deadline = time.monotonic() + QUIET_LIMIT
    previous = cpu_seconds(roots)
    while time.monotonic() < deadline:
        await asyncio.sleep(QUIET_WINDOW)
        now = cpu_seconds(roots)
        if sum(spent(previous, now).values()) <= QUIET_CPU_SHARE * QUIET_WINDOW:
            return
        previous = now


async def run_phase(
    name: str,
    url: str | list[str],
    load: Load,
    roots: dict[str, int],
    *,
    finished: Awaitable[Any] | None = None,
) -> Phase:
    """Run wrk for load.seconds (or until `finished` completes, when given) and return
    what it counted and the CPU each process tree in `roots` spent meanwhile.

    Given several URLs (every gateway replica), one wrk per URL runs side by side, each
    with its share of the connections, threads, rate, ids and slots."""
    urls = [url] if isinstance(url, str) else url
    with tempfile.TemporaryDirectory(prefix="calendence-wrk-") as scratch:
        before = cpu_seconds(roots)
        schedules_before = thread_schedules(roots)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        wrks: list[tuple[asyncio.subprocess.Process, Path]] = []
        try:
            for index, target in enumerate(urls):
                wrks.append(
                    await _start_wrk(Path(scratch) / str(index), target, load, index, len(urls))
                )
            outputs = await _wrk_outputs(wrks, finished)
        except BaseException:
            # A phase abandoned (the bench stopped, one wrk failed) leaves no wrk
            # running on, loading a stack that is going away.
            await _kill(wrk for wrk, _ in wrks)
            raise
        schedules_after = thread_schedules(roots)
        waited = waited_between(schedules_before, schedules_after)
        wake_ups = runs_between(schedules_before, schedules_after)
        run = WrkRun.combined(outputs)
        if load.drain_seconds:
            run.seconds = load.seconds  # the units counted all started within it
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        await settle(roots)
        cpu = spent(before, cpu_seconds(roots))
        cpu["wrk"] = (children_after.ru_utime + children_after.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        return Phase(name, load, run, cpu, time.monotonic() - started, waited=waited, runs=wake_ups)


async def _wrk_outputs(
    wrks: list[tuple[asyncio.subprocess.Process, Path]], finished: Awaitable[Any] | None
) -> list[WrkRun]:
    """What each wrk counted, once each has ended (or `finished` has completed)."""
    if finished is not None:
        # wrk ends on SIGINT as at the end of its duration, results and all.
        waiting = asyncio.gather(*(wrk.wait() for wrk, _ in wrks))
        done, _ = await asyncio.wait(
            {waiting, asyncio.ensure_future(finished)}, return_when=asyncio.FIRST_COMPLETED
        )
        if waiting not in done:
            for wrk, _ in wrks:
                wrk.send_signal(signal.SIGINT)
    outputs = []
    for wrk, out in wrks:
        stderr = await wrk.stderr.read() if wrk.stderr else b""
        if await wrk.wait() != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({wrk.returncode}): {stderr.decode()}")
        outputs.append(WrkRun.parse(out.read_text()))
    return outputs


async def _kill(processes: Iterable[asyncio.subprocess.Process]) -> None:
    """Kill what still runs and reap it (no zombie left for the bench's parent)."""
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _wrk_files(scratch: Path, ids: list[str]) -> tuple[Path, Path]:
    """Where a wrk writes its results, and the file of ids it reads (cancellations)."""
    scratch.mkdir()
    ids_file = scratch / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    return scratch / "out.txt", ids_file


async def _start_wrk(
    scratch: Path, url: str, load: Load, index: int, count: int
) -> tuple[asyncio.subprocess.Process, Path]:
    """wrk number `index` of `count` running side by side."""
    out, ids_file = _wrk_files(scratch, load.ids[index::count])
    connections = max(1, load.connections // count)
    threads = max(1, min(load.threads // count or 1, connections))
    env = {
        **os.environ,
        "BENCH_KIND": load.kind,
        "BENCH_MODE": load.mode,
        "BENCH_THREADS": str(threads),
        "BENCH_RATE": f"{load.rate / count:.3f}",
        "BENCH_TOKENS": str(load.tokens_file or ""),
        "BENCH_IDS": str(ids_file),
        "BENCH_SERVICE_ID": load.service_id,
        "BENCH_LOCATION_ID": load.location_id,
        "BENCH_FIRST_SLOT": str(load.first_slot),
        "BENCH_SLOT_BASE": str(load.slot_base),
        "BENCH_SLOT_SECONDS": str(load.slot_seconds),
        "BENCH_SLOT_STRIDE": str(count),
        "BENCH_SLOT_OFFSET": str(index),
        "BENCH_OUT": str(out),
        "BENCH_TOKEN_ORDER": load.token_order,
        "BENCH_STOP_AFTER_US": str(round(load.seconds * 1e6) if load.drain_seconds else 0),
    }
    wrk = await asyncio.create_subprocess_exec(
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(load.seconds + load.drain_seconds))}s",
        "--timeout",
        "120s",
        "-s",
        str(LOAD_SCRIPT),
        url,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return wrk, out
