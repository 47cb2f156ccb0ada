"""The benchmark itself (`make bench`): it runs end to end, counts every answer's status,
fails on a 5xx, and measures open-loop latency from each request's scheduled time.

No figure is asserted as fast or slow: speed is the benchmark's to report, not a test's.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from calendence.devstack.bench import throwaway_stack
from calendence.devstack.processes import free_port
from calendence.devstack.stores import AOF_REWRITE_PERCENTAGE

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import run as bench_run  # noqa: E402

STACK_PROCESSES = bench_run.STACK_PROCESSES


@dataclass
class Holds:
    """A stand-in for the hold endpoint: answers `status` after `pause` seconds,
    echoing X-Request-Id as the gateway does."""

    url: str = ""
    status: int = 201
    pause: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        if self.pause:
            await asyncio.sleep(self.pause)
        return web.Response(
            status=self.status,
            body=b'{"hold_id": "00000000-0000-0000-0000-000000000000"}',
            content_type="application/json",
            headers={"X-Request-Id": request.headers.get("X-Request-Id", "")},
        )


@pytest.fixture
async def holds() -> AsyncIterator[Holds]:
    served = Holds()
    app = web.Application()
    app.router.add_post("/api/v1/bookings/hold", served.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    served.url = f"http://127.0.0.1:{port}"
    try:
        yield served
    finally:
        await runner.cleanup()


def hold_load(
    tmp_path: Path, mode: str, connections: int, seconds: float, rate: float = 0.0
) -> loadgen.Load:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("token-a\ntoken-b\n")
    return loadgen.Load(
        "hold",
        mode,
        connections,
        seconds,
        rate=rate,
        tokens_file=tokens,
        service_id="svc",
        location_id="loc",
        first_slot=2_000_000_000,
    )


async def test_every_5xx_answer_is_counted_and_fails_the_run(holds: Holds, tmp_path: Path) -> None:
    holds.status = 503
    phase = await loadgen.run_phase(
        "holds against a failing server", holds.url, hold_load(tmp_path, "closed", 4, 1), {}
    )
    answered = phase.run.statuses["hold 503"]
    assert answered > 0
    assert set(phase.run.statuses) == {"hold 503"}
    assert bench_run.failures([phase], {}) == [
        f"holds against a failing server: {answered} x hold 503"
    ]


async def test_success_and_client_errors_do_not_fail_the_run(holds: Holds, tmp_path: Path) -> None:
    holds.status = 409
    phase = await loadgen.run_phase(
        "holds on taken slots", holds.url, hold_load(tmp_path, "closed", 4, 1), {}
    )
    assert phase.run.statuses["hold 409"] > 0
    assert bench_run.failures([phase], {}) == []


async def test_client_errors_other_than_409_fail_the_run_as_invalid_figures(
    holds: Holds, tmp_path: Path
) -> None:
    # A slot outside the booking policy answers 422: a phase of those measured refusals.
    holds.status = 422
    phase = await loadgen.run_phase(
        "holds outside the horizon", holds.url, hold_load(tmp_path, "closed", 4, 1), {}
    )
    refused = phase.run.statuses["hold 422"]
    assert refused > 0
    [failure] = bench_run.failures([phase], {})
    assert failure.startswith(f"holds outside the horizon: {refused} x hold 422 of {refused}")


async def test_open_loop_latency_counts_from_the_scheduled_time_not_the_send(
    holds: Holds, tmp_path: Path
) -> None:
    # One connection, a server that takes 0.1 s per request and 40 requests due per
    # second: requests wait for the connection, and that wait is part of their latency.
    holds.pause = 0.1
    phase = await loadgen.run_phase(
        "open loop behind a slow server",
        holds.url,
        hold_load(tmp_path, "open", 1, 2, rate=40),
        {},
    )
    from_schedule = bench_run.latency_summary(phase.run.latencies_us)
    from_send_p50_ms = phase.run.wrk_latency_us["50"] / 1000
    assert from_schedule["n"] == phase.run.statuses["hold 201"] > 0
    assert from_send_p50_ms >= 100
    # By the end, requests were due a second or more before the connection was free.
    assert from_schedule["max_ms"] > 5 * from_send_p50_ms


def run_tiny(
    script: str, results_dir: Path, timeout: float, *options: str
) -> subprocess.CompletedProcess[str]:
    """A bench script in its --tiny mode, which must succeed."""
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / script),
            "--tiny",
            "--results-dir",
            str(results_dir),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_make_bench_in_tiny_mode_measures_every_path_against_its_floor(tmp_path: Path) -> None:
    done = run_tiny("run.py", tmp_path, timeout=280)
    results = json.loads(next(tmp_path.glob("bench-*.json")).read_text())
    summary = next(tmp_path.glob("bench-*.txt")).read_text()
    assert summary in done.stdout
    assert results["failures"] == []
    assert len(results["machine"]["load_average_at_start"]) == 3
    for path, unit in (("holds", "hold 201"), ("book", "book 201")):
        measured = results[path]
        assert measured["ratio"] == pytest.approx(
            measured["full"]["saturation"]["per_second"]
            / measured["floor"]["saturation"]["per_second"],
            abs=0.001,
        )
        assert measured["full"]["saturation"]["statuses"][unit] > 0
        # Each target's turns at saturation ran at the connection count it peaked at.
        for target in ("full", "floor"):
            tried = {int(n): rate for n, rate in measured["probes_per_second"][target].items()}
            assert sorted(tried) == list(bench_run.TINY_PEAK_CONNECTIONS)
            assert tried[measured["connections"][target]] == max(tried.values())
            turns = [p for p in results["phases"] if p["name"].startswith(f"{path} {target} sat")]
            assert turns and all(
                f"({measured['connections'][target]} connections)" in p["name"] for p in turns
            )
            # A turn ends by taking no new hold and finishing what is under way: every
            # hold it placed is booked, none left over counted without its booking.
            if path == "book":
                for turn in turns:
                    assert turn["statuses"]["hold 201"] == turn["statuses"]["book 201"], turn
        half = measured["full"]["half_rate"]
        assert half["latency_from_schedule"]["n"] > 0
        assert half["latency_from_schedule"]["p99_ms"] >= half["latency_from_schedule"]["p50_ms"]
        cpu = measured["full"]["saturation"]["cpu_us_per_unit"]
        assert set(STACK_PROCESSES) <= set(cpu)
        assert cpu["gateway"] > 0 and cpu["hold-service"] > 0
        # Every thread that wakes for a request waits some time for a core; the open
        # loop says how long, per process (the queue a busy machine adds to each hop).
        waited = half["waited_us_per_unit"]
        assert set(STACK_PROCESSES) <= set(waited) and min(waited.values()) >= 0
        assert waited["gateway"] > 0
    # Holds wake the gateway's threads, in both loops: the bench counts how often.
    for part in ("saturation", "half_rate"):
        assert results["holds"]["full"][part]["runs_per_unit"]["gateway"] > 0
    batches = results["holds"]["full"]["saturation"]["hold_batches"]
    assert batches["calls"] > 0 and batches["mean_holds_per_call"] >= 1
    race = results["holds"]["race"]
    assert race["rounds"] == [{"201": 1, "409": race["racers"] - 1}] * len(race["rounds"])
    assert results["book"]["full"]["saturation"]["cpu_us_per_unit"]["postgres"] > 0
    # Each booking's confirmation email reaches the local SMTP server, whose CPU is shown.
    assert results["book"]["full"]["saturation"]["cpu_us_per_unit"][bench_run.MAIL_STAND_IN] > 0
    # Each booking is at least a transaction of its own, on both paths; holds live in Redis.
    for target in ("full", "floor"):
        counted = results["book"][target]["saturation"]["store_counts_per_unit"]
        assert counted["postgres statements"] >= 1
        assert counted["redis commands"] >= 1
    held = results["holds"]["full"]["saturation"]["store_counts_per_unit"]
    assert held["redis commands"] >= 1 and held["postgres statements"] < 1
    events = results["events"]
    for part in ("saturation", "half_rate"):
        assert events[part]["webhooks_missing"] == 0
        assert events[part]["webhooks_arrived"] == events[part]["cancellations"] > 0
        assert events[part]["answer_to_webhook"]["n"] == events[part]["cancellations"]
    assert events["bad_signatures"] == 0
    for line in (
        "holds ",
        "hold+book ",
        "events ",
        "holds per PlaceHolds call",
        "holds open loop, waiting for a core, microseconds per unit: ",
        "hold+book open loop, waiting for a core, microseconds per unit: ",
        "holds open loop, the stack's CPU per unit: ",
        "hold+book open loop, the stack's CPU per unit: ",
        "holds wake-ups per unit (times a thread was put on a core), the stack: ",
        "hold+book wake-ups per unit (times a thread was put on a core), the stack: ",
        "holds at saturation: full at ",
        "CPU microseconds per unit",
        "gateway ",
        "What the stores answered per unit",
        "postgres statements ",
    ):
        assert line in summary


def test_with_prototype_the_design_without_the_rules_takes_the_holds_paths_place(
    tmp_path: Path,
) -> None:
    done = run_tiny("run.py", tmp_path, 200, "--paths", "holds", "--prototype")
    results = json.loads(next(tmp_path.glob("bench-*.json")).read_text())
    summary = next(tmp_path.glob("bench-*.txt")).read_text()
    assert summary in done.stdout
    assert results["failures"] == []
    holds = results["holds"]
    full, floor = holds["full"]["saturation"], holds["floor"]["saturation"]
    assert full["statuses"]["hold 201"] > 0 and holds["ratio"] > 0
    # The prototype's two processes placed the holds, one SET NX each in Redis (the
    # path's own script runs several commands a hold), against the same naive floor.
    assert full["cpu_us_per_unit"][bench_run.PROTOTYPE_APP] > 0
    assert full["cpu_us_per_unit"][bench_run.PROTOTYPE_SERVICE] > 0
    assert full["store_counts_per_unit"]["redis commands"] < 1.5
    assert floor["cpu_us_per_unit"]["naive-hold-app"] > 0
    assert "full/s is the design's prototype" in summary
    assert f"\n{bench_run.PROTOTYPE_SERVICE} " in summary


async def test_a_durable_bench_stack_flushes_every_commit_as_production_does() -> None:
    with throwaway_stack(durable=True) as stack:
        connection = await asyncpg.connect(stack.env["DATABASE_URL"])
        try:
            assert await connection.fetchval("SHOW fsync") == "on"
        finally:
            await connection.close()


def test_the_grpc_hop_bench_measures_both_sides_of_unary_multiplexed_and_stream_calls(
    tmp_path: Path,
) -> None:
    done = run_tiny("grpc_hop.py", tmp_path, timeout=120)
    results = json.loads(next(tmp_path.glob("grpc-hop-*.json")).read_text())
    cases = results["cases"]
    assert {c["case"]["kind"] for c in cases} == {"unary", "multiplexed", "stream"}
    for measured in cases:
        assert measured["messages_per_second"] > 0
        assert measured["client_us_per_message"] > 0 and measured["server_us_per_message"] > 0
        per_hold = measured["server_us_per_message"] / measured["case"]["holds_per_message"]
        assert measured["server_us_per_hold"] == pytest.approx(per_hold, abs=0.1)
    assert next(tmp_path.glob("grpc-hop-*.txt")).read_text() in done.stdout


def test_the_client_email_bench_measures_composing_and_flattening_in_each_zone(
    tmp_path: Path,
) -> None:
    done = run_tiny("client_email.py", tmp_path, timeout=60)
    results = json.loads(next(tmp_path.glob("client-email-*.json")).read_text())
    assert set(results["zones"]) == {"UTC", "Europe/Paris"}
    for cost in results["zones"].values():
        assert cost["compose_us"] > 0 and cost["flatten_us"] > 0
        assert cost["email_us"] == pytest.approx(cost["compose_us"] + cost["flatten_us"])
    assert next(tmp_path.glob("client-email-*.txt")).read_text() in done.stdout


def test_the_aof_rewrite_bench_measures_redis_and_its_rewrites_per_hold_at_each_percentage(
    tmp_path: Path,
) -> None:
    done = run_tiny("aof_rewrite.py", tmp_path, timeout=120)
    results = json.loads(next(tmp_path.glob("aof-rewrite-*.json")).read_text())
    assert [run["percentage"] for run in results["runs"]] == [100, AOF_REWRITE_PERCENTAGE]
    for run in results["runs"]:
        # Every hold placed (the run fails otherwise), the file rewritten at least once
        # past its lowered first threshold, and each rewrite's child counted.
        assert run["rewrites"] >= 1 and run["rewrite_us_per_hold"] > 0
        assert run["redis_us_per_hold"] > 0 and run["file_mb_at_end"] > 0
    assert next(tmp_path.glob("aof-rewrite-*.txt")).read_text() in done.stdout


def test_the_request_cost_bench_measures_each_kind_of_request_on_the_processes_it_reaches(
    tmp_path: Path,
) -> None:
    done = run_tiny("request_cost.py", tmp_path, timeout=240)
    results = json.loads(next(tmp_path.glob("request-cost-*.json")).read_text())
    assert results["failures"] == []
    rounds = results["rounds"]
    assert set(rounds) == {"health", "lookup", "hold"}
    for measured in rounds.values():
        assert len(measured) == 1
        assert measured[0]["requests_per_second"] > 0 and measured[0]["gateway"] > 0
    # A lookup is answered by booking-service, a hold by hold-service; /healthz by neither.
    assert rounds["lookup"][0]["booking-service"] > 10 * rounds["health"][0]["booking-service"]
    assert rounds["hold"][0]["hold-service"] > 10 * rounds["health"][0]["hold-service"]
    assert next(tmp_path.glob("request-cost-*.txt")).read_text() in done.stdout


def test_the_instructions_bench_counts_each_kind_of_request_on_the_process_under_callgrind(
    tmp_path: Path,
) -> None:
    done = run_tiny("instructions.py", tmp_path, timeout=300)
    results = json.loads(next(tmp_path.glob("instructions-*.json")).read_text())
    assert results["failures"] == []
    gateway, hold_service = results["processes"]["gateway"], results["processes"]["hold-service"]
    assert set(gateway) == {"health", "lookup", "hold"} and set(hold_service) == {"hold"}
    for counted in (*gateway.values(), *hold_service.values()):
        assert counted["answered"] > 0
        assert counted["per_request"] == counted["instructions"] / counted["answered"]
    # /healthz is answered by the gateway alone; a hold is also parsed, checked and sent on.
    assert gateway["hold"]["per_request"] > 2 * gateway["health"]["per_request"]
    assert next(tmp_path.glob("instructions-*.txt")).read_text() in done.stdout


def test_a_bench_stopped_with_sigterm_stops_its_stack_and_removes_its_folder() -> None:
    # Not --tiny, whose one-second warm-up would end on its own: a warm-up wrk that
    # outlives the stopped bench by half a minute, unless the bench stops it.
    bench = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--paths",
            "holds",
            "--sessions",
            "400",
            "--keys",
            "2",
            "--warmup",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert bench.stdout is not None
    state_dir = ""
    for line in bench.stdout:  # until the stack is up and under load
        if line.startswith("starting the stack in "):
            state_dir = line.removeprefix("starting the stack in ").removesuffix(" ...\n")
        if "holds full" in line:
            break
    children = _children_once_wrk_runs(bench.pid)
    bench.terminate()
    bench.wait(timeout=120)
    assert state_dir and not Path(state_dir).exists()
    assert "wrk" in children.values()  # besides the stores and services it started
    still_running = [pid for pid in children if _runs(pid)]
    assert not still_running, f"processes of the stopped bench still run: {still_running}"


def _children_once_wrk_runs(parent: int) -> dict[str, str]:
    """The process's children (pid: name), once wrk is among them (its load under way)."""
    children: dict[str, str] = {}
    for _ in range(200):
        pids = subprocess.run(
            ["pgrep", "-P", str(parent)], capture_output=True, text=True
        ).stdout.split()
        children = {pid: _name(pid) for pid in pids}
        if "wrk" in children.values():
            break
        time.sleep(0.05)
    return children


def _name(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return ""


def _runs(pid: str) -> bool:
    """Whether a process still runs: an exited one not yet reaped by its new parent
    (a zombie, state Z) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
