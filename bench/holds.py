"""Hold benchmark (issue 4): how many holds per second the whole path sustains.

    make bench-holds                      # or: .venv/bin/python bench/holds.py
    .venv/bin/python bench/holds.py --clients 32 --seconds 10

It starts its own stack (PostgreSQL, Redis, NATS and the four services; SERVICE_ENV
below) in a temporary folder, creates a business whose location is open around the
clock and a 30-minute service without staff, creates session tokens (each used once
before measuring, so the gateway knows it), and then drives
POST /api/v1/bookings/hold with the same load generator in four phases:

1. peak: N concurrent clients (closed loop), each request a distinct future slot;
2. floor: the same against bench/naive_hold_app.py, one aiohttp process doing SET NX
   on the same Redis, and the ratio of the two (the two take turns in slices);
3. half peak: an open loop at half the measured peak rate (latency counted from each
   request's scheduled time, so a stall is not hidden);
4. contention: 500 clients with 500 session tokens race for one slot, several rounds.

Results are printed and written to bench/results/holds-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from calendence.devstack.bench import run_on_fresh_stack
from calendence.devstack.processes import ManagedProcess, free_port, wait_for_port
from calendence.devstack.stack import LocalStack

HOLD_PATH = "/api/v1/bookings/hold"
SERVICE_MINUTES = 30
AROUND_THE_CLOCK = {
    day: [{"opens": "00:00", "closes": "24:00"}]
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
}
HERE = Path(__file__).resolve().parent
SERVICE_ENV = {
    "LOG_LEVEL": "WARNING",
    # Keys stay in the gateway's cache for the whole run: with the default 30 s, the
    # same 64 tokens, all checked at the same moment, would expire in one burst mid-phase.
    "AUTH_CACHE_SECONDS": "600",
    # 64 clients on 64 session tokens ask far more often than a browser would, and the
    # set-up makes 500 sessions at once; the per-key limits stay in force (their Redis
    # call included) but never refuse here.
    "RATE_LIMIT_SESSION_PER_SECOND": "1000000",
    "RATE_LIMIT_SESSION_BURST": "1000000",
    "RATE_LIMIT_PER_SECOND": "1000000",
    "RATE_LIMIT_BURST": "1000000",
}


@dataclass
class Run:
    name: str
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def record(self, status: int, seconds: float) -> None:
        self.statuses[status] += 1
        self.latencies.append(seconds)

    @property
    def holds_per_second(self) -> float:
        return self.statuses[201] / self.elapsed if self.elapsed else 0.0

    def ms(self, quantile: float) -> float:
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(quantile * len(ordered)) - 1))
        return ordered[index] * 1000 if ordered else float("nan")

    @classmethod
    def merged(cls, name: str, runs: list[Run]) -> Run:
        total = cls(name)
        for run in runs:
            total.statuses.update(run.statuses)
            total.latencies.extend(run.latencies)
            total.elapsed += run.elapsed
        return total

    def summary(self) -> dict[str, Any]:
        return {
            "holds_per_second": round(self.holds_per_second, 1),
            "requests": len(self.latencies),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "seconds": round(self.elapsed, 2),
            "p50_ms": round(self.ms(0.50), 2),
            "p99_ms": round(self.ms(0.99), 2),
            "max_ms": round(self.ms(1.0), 2),
        }

    def line(self) -> str:
        s = self.summary()
        return (
            f"{self.name:<28} {s['holds_per_second']:>8.1f} holds/s  "
            f"p50 {s['p50_ms']:>7.2f} ms  p99 {s['p99_ms']:>7.2f} ms  "
            f"max {s['max_ms']:>7.2f} ms  {s['statuses']}"
        )


class Slots:
    """Distinct, non-overlapping future start times, one per request."""

    def __init__(self, first: datetime) -> None:
        self._numbers = itertools.count()
        self._first = first

    def next_start(self) -> str:
        moment = self._first + timedelta(minutes=SERVICE_MINUTES * next(self._numbers))
        return moment.isoformat()


@dataclass
class Target:
    name: str
    url: str
    service_id: str
    location_id: str

    def body(self, starts_at: str) -> bytes:
        return orjson.dumps(
            {
                "service_id": self.service_id,
                "location_id": self.location_id,
                "starts_at": starts_at,
            }
        )


async def post_hold(
    http: aiohttp.ClientSession, target: Target, token: str, body: bytes
) -> tuple[int, float]:
    started = time.perf_counter()
    async with http.post(
        target.url + HOLD_PATH,
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    ) as answer:
        await answer.read()
        return answer.status, time.perf_counter() - started


async def closed_loop(
    http: aiohttp.ClientSession,
    target: Target,
    slots: Slots,
    tokens: list[str],
    clients: int,
    seconds: float,
    name: str,
) -> Run:
    """`clients` concurrent clients, each sending its next hold as soon as one answers."""
    run = Run(name)
    deadline = time.perf_counter() + seconds

    async def client(token: str) -> None:
        while time.perf_counter() < deadline:
            status, took = await post_hold(http, target, token, target.body(slots.next_start()))
            run.record(status, took)

    started = time.perf_counter()
    await asyncio.gather(*(client(tokens[i % len(tokens)]) for i in range(clients)))
    run.elapsed = time.perf_counter() - started
    return run


async def open_loop(
    http: aiohttp.ClientSession,
    target: Target,
    slots: Slots,
    tokens: list[str],
    rate: float,
    seconds: float,
    name: str,
) -> Run:
    """Requests sent on a fixed schedule; latency counts from the scheduled time."""
    run = Run(name)
    interval = 1.0 / rate
    token_cycle: Iterator[str] = itertools.cycle(tokens)
    pending: set[asyncio.Task[None]] = set()

    async def one(scheduled: float, token: str, body: bytes) -> None:
        status, _ = await post_hold(http, target, token, body)
        run.record(status, time.perf_counter() - scheduled)

    started = time.perf_counter()
    for index in range(int(rate * seconds)):
        scheduled = started + index * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(
            one(scheduled, next(token_cycle), target.body(slots.next_start()))
        )
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    run.elapsed = time.perf_counter() - started
    return run


async def contention(
    http: aiohttp.ClientSession, target: Target, slots: Slots, tokens: list[str], rounds: int
) -> tuple[Run, list[int]]:
    """Every token races for one slot at once, `rounds` times; winners per round."""
    run = Run(f"contention x{len(tokens)}")
    winners = []
    started = time.perf_counter()
    for _ in range(rounds):
        body = target.body(slots.next_start())
        answers = await asyncio.gather(*(post_hold(http, target, t, body) for t in tokens))
        for status, took in answers:
            run.record(status, took)
        winners.append(sum(1 for status, _ in answers if status == 201))
        await asyncio.sleep(0.2)
    run.elapsed = time.perf_counter() - started
    return run, winners


async def create_business(
    http: aiohttp.ClientSession, stack: LocalStack, sessions: int
) -> dict[str, Any]:
    """A hub, business, 24/7 location and staff-less service, and session tokens."""
    hub = stack.admin("create-hub", "--name", "Bench Hub")
    hub_key = stack.admin("create-key", "--kind", "hub", "--hub-id", hub["id"])["token"]

    async def post(
        path: str, key: str, document: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        async with http.post(
            stack.gateway_url + path,
            json=document,
            headers={"Authorization": f"Bearer {key}", **(headers or {})},
        ) as answer:
            body = await answer.json(content_type=None)
            if answer.status != 201:
                raise RuntimeError(f"POST {path}: {answer.status} {body}")
            return body

    business = await post("/api/v1/businesses", hub_key, {"name": "Bench Business"})
    key = (
        await post("/api/v1/api-keys", hub_key, headers={"Calendence-Business": business["id"]})
    )["token"]
    location = await post(
        "/api/v1/locations",
        key,
        {"name": "Always Open", "timezone": "UTC", "opening_hours": AROUND_THE_CLOCK},
    )
    service = await post(
        "/api/v1/services",
        key,
        {
            "name": "Bench Service",
            "duration_minutes": SERVICE_MINUTES,
            "price_amount": 1000,
            "currency": "EUR",
            "location_ids": [location["id"]],
        },
    )
    tokens: list[str] = []
    for _ in range(0, sessions, 50):
        made = await asyncio.gather(*(post("/api/v1/sessions", key) for _ in range(50)))
        tokens.extend(m["token"] for m in made)
    # One request per token, so the gateway knows every token before any phase starts.
    for first in range(0, len(tokens), 50):
        await asyncio.gather(
            *(release_nothing(http, stack.gateway_url, t) for t in tokens[first : first + 50])
        )
    return {
        "business_id": business["id"],
        "location_id": location["id"],
        "service_id": service["id"],
        "tokens": tokens[:sessions],
    }


async def release_nothing(http: aiohttp.ClientSession, url: str, token: str) -> None:
    async with http.delete(
        f"{url}{HOLD_PATH}/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"}
    ) as answer:
        if answer.status != 404:
            raise RuntimeError(f"warming a token: {answer.status} {await answer.text()}")


_HOLD_BUCKET = re.compile(
    r'^calendence_http_request_duration_seconds_bucket\{le="([^"]+)",method="POST",'
    r'route="/api/v1/bookings/hold",status="201"\} (\S+)$'
)


async def gateway_hold_buckets(http: aiohttp.ClientSession, url: str) -> dict[float, float]:
    """The gateway's own latency histogram of 201 holds (cumulative, by upper bound)."""
    async with http.get(url + "/metrics") as answer:
        text = await answer.text()
    found = (_HOLD_BUCKET.match(line) for line in text.splitlines())
    return {float(m.group(1)): float(m.group(2)) for m in found if m}


def share_within(before: dict[float, float], after: dict[float, float], bound: float) -> float:
    total = after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0)
    return (after.get(bound, 0.0) - before.get(bound, 0.0)) / total if total else float("nan")


def start_naive(stack: LocalStack) -> tuple[ManagedProcess, str]:
    port = free_port()
    process = ManagedProcess(
        "naive-hold-app",
        [sys.executable, str(HERE / "naive_hold_app.py")],
        stack.state_dir / "logs" / "naive-hold-app.log",
        env={**stack.env, "NAIVE_PORT": str(port)},
    )
    wait_for_port(port, 30, process)
    return process, f"http://127.0.0.1:{port}"


async def benchmark(args: argparse.Namespace, stack: LocalStack) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        made = await create_business(http, stack, max(args.clients, args.racers))
        tokens: list[str] = made["tokens"]
        full = Target("full path", stack.gateway_url, made["service_id"], made["location_id"])
        tomorrow = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
            days=1
        )
        full_slots = Slots(tomorrow)
        naive_process, naive_url = start_naive(stack)
        naive = Target("naive floor", naive_url, made["service_id"], made["location_id"])
        naive_slots = Slots(tomorrow)
        results: dict[str, Any] = {
            "cpus": os.cpu_count(),
            "clients": args.clients,
            "seconds_per_phase": args.seconds,
            "service_minutes": SERVICE_MINUTES,
        }
        try:
            print(f"warming up ({args.warmup:.0f} s each)...", flush=True)
            await closed_loop(http, full, full_slots, tokens, args.clients, args.warmup, "warm-up")
            await closed_loop(
                http, naive, naive_slots, tokens, args.clients, args.warmup, "warm-up"
            )

            # The two targets take turns in short slices, so that whatever else the
            # machine does meanwhile weighs on both alike.
            peaks: list[Run] = []
            floors: list[Run] = []
            for _ in range(args.slices):
                for runs, target, slots in (
                    (peaks, full, full_slots),
                    (floors, naive, naive_slots),
                ):
                    runs.append(
                        await closed_loop(
                            http,
                            target,
                            slots,
                            tokens,
                            args.clients,
                            args.seconds / args.slices,
                            target.name,
                        )
                    )
            peak = Run.merged(f"full path x{args.clients}", peaks)
            floor = Run.merged(f"naive floor x{args.clients}", floors)
            print(peak.line(), flush=True)
            print(floor.line(), flush=True)
            ratio = peak.holds_per_second / floor.holds_per_second
            print(f"{'full / naive':<28} {ratio:>8.2f}  (target >= 0.70)", flush=True)
        finally:
            naive_process.stop()

        half_rate = peak.holds_per_second / 2
        buckets_before = await gateway_hold_buckets(http, stack.gateway_url)
        half = await open_loop(
            http,
            full,
            full_slots,
            tokens[: args.clients],
            half_rate,
            args.seconds,
            f"full path @ {half_rate:.0f}/s",
        )
        print(half.line() + "  (target p99 < 25 ms)", flush=True)
        inside = share_within(
            buckets_before, await gateway_hold_buckets(http, stack.gateway_url), 0.025
        )
        print(f"{'  gateway-side within 25 ms':<28} {inside:>8.2%}  (its own histogram)")

        race, winners = await contention(http, full, full_slots, tokens[: args.racers], args.rounds)
        print(race.line(), flush=True)
        print(f"{'winners per round':<28} {winners}  (exactly one each: {set(winners) == {1}})")
        results |= {
            "peak": peak.summary(),
            "naive_floor": floor.summary(),
            "ratio": round(ratio, 3),
            "half_peak": {
                "rate": round(half_rate, 1),
                **half.summary(),
                "gateway_side_within_25_ms": round(inside, 4),
            },
            "contention": {"racers": args.racers, "winners_per_round": winners, **race.summary()},
        }
        return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument("--seconds", type=float, default=15, help="seconds per phase (default 15)")
    parser.add_argument(
        "--slices", type=int, default=3, help="turns the full path and the floor take (default 3)"
    )
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per target")
    parser.add_argument("--racers", type=int, default=500, help="clients racing for one slot")
    parser.add_argument("--rounds", type=int, default=5, help="contention rounds")
    args = parser.parse_args()
    run_on_fresh_stack("holds", SERVICE_ENV, lambda stack: benchmark(args, stack), HERE / "results")


if __name__ == "__main__":
    main()
