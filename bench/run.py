"""`make bench`: what users get from the hot paths, against their naive floors.

    make bench                                  # about four minutes
    make bench BENCH_ARGS="--paths holds"       # one path; --help for every setting
    .venv/bin/python bench/run.py --tiny        # seconds per phase, to see that it works

It starts the stack `make run` starts, with the same settings, in a temporary folder,
makes a business (a 24/7 location, a 5-minute service without staff), business keys
and many session tokens, and drives it with wrk (bench/load.lua), a C load generator,
so that the load takes little CPU from the services. For each path:

- holds: POST /api/v1/bookings/hold on distinct future slots, against
  bench/naive_hold_app.py (one aiohttp process doing SET NX on the same Redis); then
  500 clients race for one slot, 5 rounds: one 201 per round, the rest 409;
- book: a hold, then POST /api/v1/bookings with it and the same session token, against
  bench/naive_book_app.py (GETDEL the hold, one PostgreSQL transaction inserting the
  booking under the same exclusion constraint and an outbox row);
- events: DELETE /api/v1/bookings/<id> (bookings the book path made) until the
  booking.cancelled webhook arrives at a receiver in this process, which checks every
  signature; no floor.

it measures throughput at saturation (after every session token has made one request
and each target has had a warm-up; closed loop, each target at the connection count of
its peak among --peak-connections, tried a few seconds each; the full path and its
floor take turns in slices of the same run; a turn takes no new unit after its seconds
and lets what is under way finish, so that the answers counted are all the stack did),
then latency in an open loop at half that rate
(p50/p99/p99.9 from each request's scheduled time, so a stall is not hidden), and the
CPU microseconds each process spent per request (from /proc, PostgreSQL's backends
included, counted until the stack is quiet again). Every answer's status is counted;
any 5xx, socket error, lost or badly signed webhook, a race round without exactly
one winner, or client errors other than 409 in more than 1% of a phase's answers (the
figures would measure refusals) fails the run (exit status 1).

With --prototype the holds path's full side is the design's prototype instead of the
stack (bench/prototype_hold_app.py in front of bench/prototype_hold_service.py: an
in-memory bucket per token, the holds that arrive together sent as one gRPC call, at
most two in flight, each batch one Redis pipeline of SET NX, and none of the path's
other rules), measured against the same floor: what the rules cost on this machine.

Results: bench/results/bench-<time>.json and .txt (the printed summary).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import orjson
import uvloop
from aiohttp import web
from calendence.devstack.bench import throwaway_stack
from calendence.devstack.processes import ManagedProcess, free_port, wait_for_port
from calendence.devstack.stack import LocalStack, service_of
from cpu import cpu_seconds, spent
from loadgen import HERE, Load, Phase, run_phase
from prometheus_client.parser import text_string_to_metric_families
from results_files import write_results
from standardwebhooks import Webhook
from store_counts import STORE_COUNTS, counted_between, store_counts

# Holds take consecutive slots of this length: 5 minutes (the granule holds are kept
# in) gives a ten-year horizon about a million of them, more than a full run takes.
SERVICE_MINUTES = 5
AROUND_THE_CLOCK = {
    day: [{"opens": "00:00", "closes": "24:00"}]
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
}
PATHS = ("holds", "book", "events")
# What each path counts as one unit done, in wrk's "<request> <status>" terms.
DONE = {"holds": "hold 201", "book": "book 201", "events": "cancel 200"}
# How long wrk runs on after the last webhook of an events phase arrived, for the
# answers still on their way to it.
ANSWERS_IN_FLIGHT_SECONDS = 1.0
# The design's prototype (--prototype), measured in the holds path's full place.
PROTOTYPE_APP = "prototype gateway"
PROTOTYPE_SERVICE = "prototype service"
STACK_PROCESSES = (
    "gateway",
    "hold-service",
    "booking-service",
    "notify-service",
    "postgres",
    "redis",
    "nats",
)
# `make run`'s local SMTP server, which keeps client emails as files where production
# hands them to a mail provider: on the same cores as the stack, but not part of it.
MAIL_STAND_IN = "mail stand-in"
# Processes whose CPU is reported but not the stack's: the load and the stand-in.
NOT_THE_STACK = ("wrk", "bench receiver", MAIL_STAND_IN)


def stack_cpu(cpu_us_per_unit: dict[str, float]) -> float:
    """What every process of the stack spent per unit together, the load left out."""
    return sum(us for name, us in cpu_us_per_unit.items() if name not in NOT_THE_STACK)


# --------------------------------------------------------------------------- set-up


class Api:
    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http = http
        self.base_url = base_url

    async def post(
        self, path: str, key: str, document: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        async with self.http.post(
            self.base_url + path,
            json=document,
            headers={"Authorization": f"Bearer {key}", **(headers or {})},
        ) as answer:
            body = await answer.read()
            if answer.status != 201:
                raise RuntimeError(f"POST {path}: {answer.status} {body!r}")
            return orjson.loads(body)


@dataclass
class Business:
    business_id: str
    location_id: str
    service_id: str
    keys: list[str]  # business API keys: one bucket each, like as many integrations
    sessions: list[str]  # session tokens, like as many booking widgets

    def session_load(
        self,
        kind: str,
        connections: int,
        seconds: float,
        tokens: Path,
        *,
        first_slot: int,
        slot_base: int,
        order: str = "random",
        threads: int = 2,
    ) -> Load:
        """A closed loop of `kind` over this business's session tokens (one per line in
        `tokens`), its holds on consecutive slots from `slot_base`."""
        return Load(
            kind,
            "closed",
            connections,
            seconds,
            tokens_file=tokens,
            service_id=self.service_id,
            location_id=self.location_id,
            first_slot=first_slot,
            slot_base=slot_base,
            slot_seconds=SERVICE_MINUTES * 60,
            token_order=order,
            threads=threads,
        )


async def create_business(api: Api, stack: LocalStack, key_count: int, sessions: int) -> Business:
    hub = stack.admin("create-hub", "--name", "Bench Hub")
    hub_key = stack.admin("create-key", "--kind", "hub", "--hub-id", hub["id"])["token"]
    # Holds take consecutive slots: the longest horizon allowed (ten years) keeps a long
    # run's slots within the booking policy.
    business = await api.post(
        "/api/v1/businesses",
        hub_key,
        {"name": "Bench Business", "booking_policy": {"max_advance_days": 3650}},
    )
    as_business = {"Calendence-Business": business["id"]}
    keys = [
        (await api.post("/api/v1/api-keys", hub_key, headers=as_business))["token"]
        for _ in range(key_count)
    ]
    location = await api.post(
        "/api/v1/locations",
        keys[0],
        {"name": "Always Open", "timezone": "UTC", "opening_hours": AROUND_THE_CLOCK},
    )
    service = await api.post(
        "/api/v1/services",
        keys[0],
        {
            "name": "Bench Service",
            "duration_minutes": SERVICE_MINUTES,
            "price_amount": 1000,
            "currency": "EUR",
            "location_ids": [location["id"]],
        },
    )
    # Each key makes its share of the sessions; a key's bucket allows a burst of them.
    made: list[str] = []
    per_key = math.ceil(sessions / key_count)
    for first in range(0, sessions, per_key * key_count):
        batch = await asyncio.gather(
            *(
                api.post("/api/v1/sessions", keys[i % key_count])
                for i in range(first, min(sessions, first + per_key * key_count))
            )
        )
        made.extend(answer["token"] for answer in batch)
    return Business(business["id"], location["id"], service["id"], keys, made)


def first_slot_tomorrow() -> int:
    """Where a run's slots start (Unix seconds): tomorrow's first, always in the future."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((midnight + timedelta(days=1)).timestamp())


@dataclass
class Receiver:
    """Webhook receiver: when each booking's booking.cancelled arrived (time.monotonic,
    the clock load.lua reads); checks every signature."""

    secret: str = ""
    arrivals: dict[str, float] = field(default_factory=dict)
    bad_signatures: int = 0
    duplicates: int = 0
    expected: set[str] = field(default_factory=set)
    all_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.monotonic()
        try:
            Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:
            self.bad_signatures += 1
            return web.Response(status=400)
        document = orjson.loads(body)
        if document["type"] == "booking.cancelled":
            booking_id = document["data"]["id"]
            if booking_id in self.arrivals:
                self.duplicates += 1
            else:
                self.arrivals[booking_id] = arrived
                if self.expected and self.expected <= self.arrivals.keys():
                    self.all_arrived.set()
        return web.Response(status=204)

    def expect(self, booking_ids: list[str]) -> asyncio.Event:
        self.expected = set(booking_ids)
        self.all_arrived = asyncio.Event()
        return self.all_arrived


def start_naive(app: str, stack: LocalStack, extra: dict[str, str]) -> tuple[ManagedProcess, str]:
    port = free_port()
    process = ManagedProcess(
        app,
        [sys.executable, str(HERE / f"{app.replace('-', '_')}.py")],
        stack.state_dir / "logs" / f"{app}.log",
        env={**stack.env, "NAIVE_PORT": str(port), **extra},
    )
    wait_for_port(port, 30, process)
    return process, f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- figures


def quantile_ms(values_us: list[float], q: float) -> float:
    if not values_us:
        return float("nan")
    ordered = sorted(values_us)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[index] / 1000, 2)


def latency_summary(values_us: list[float]) -> dict[str, float]:
    return {
        "n": len(values_us),
        "p50_ms": quantile_ms(values_us, 0.50),
        "p99_ms": quantile_ms(values_us, 0.99),
        "p99_9_ms": quantile_ms(values_us, 0.999),
        "max_ms": quantile_ms(values_us, 1.0),
    }


def at_peak(rates: dict[int, float]) -> int:
    """The connection count of the highest rate; the fewer connections on a tie."""
    return max(sorted(rates), key=lambda count: rates[count])


def merged(phases: list[Phase], done: str) -> dict[str, Any]:
    """Turns of one target at saturation, taken together."""
    units = sum(p.units(done) for p in phases)
    seconds = sum(p.run.seconds for p in phases)
    cpu: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for phase in phases:
        cpu.update(phase.cpu)
        counts.update(phase.counts)
        runs.update(phase.runs)
        statuses.update(phase.run.statuses)
    return {
        "per_second": round(units / seconds, 1) if seconds else 0.0,
        "units": units,
        "seconds": round(seconds, 2),
        "statuses": dict(sorted(statuses.items())),
        "closed_loop_latency_ms": {  # wrk's own, from sending: coordinated omission and all
            q: round(statistics.median(p.run.wrk_latency_us[q] for p in phases) / 1000, 2)
            for q in ("50", "99", "99.9")
        },
        "cpu_us_per_unit": {name: round(s * 1e6 / units, 1) for name, s in cpu.items()}
        if units
        else {},
        "store_counts_per_unit": {name: round(n / units, 2) for name, n in counts.items()}
        if units
        else {},
        "runs_per_unit": {name: round(n / units, 1) for name, n in runs.items()} if units else {},
    }


def open_summary(phase: Phase, done: str) -> dict[str, Any]:
    units = phase.units(done)
    return {
        "target_rate": round(phase.load.rate, 1),
        "achieved_rate": round(units / phase.run.seconds, 1) if phase.run.seconds else 0.0,
        "latency_from_schedule": latency_summary(phase.run.latencies_us),
        "statuses": dict(sorted(phase.run.statuses.items())),
        "cpu_us_per_unit": {k: round(v, 1) for k, v in phase.cpu_us_per(units).items()},
        # Runnable but not running, per unit: where a loaded machine's queue is.
        "waited_us_per_unit": {k: round(v, 1) for k, v in phase.waited_us_per(units).items()},
        "runs_per_unit": phase.runs_per(units),
        "store_counts_per_unit": phase.counts_per(units),
    }


@dataclass
class GatewayMetrics:
    gc: dict[str, list[float]] = field(default_factory=dict)  # generation: [runs, seconds]
    hold_batches: list[float] = field(default_factory=lambda: [0.0, 0.0])  # [calls, holds]


def hold_batches_during(before: GatewayMetrics, after: GatewayMetrics) -> dict[str, float]:
    """PlaceHolds calls the gateways sent between two scrapes, and holds per call."""
    calls = after.hold_batches[0] - before.hold_batches[0]
    holds = after.hold_batches[1] - before.hold_batches[1]
    return {"calls": int(calls), "mean_holds_per_call": round(holds / calls, 2) if calls else 0.0}


def gc_during(
    before: dict[str, list[float]], after: dict[str, list[float]]
) -> dict[str, dict[str, float]]:
    """Per generation: collections between two scrapes, their total and mean pause."""
    during: dict[str, dict[str, float]] = {}
    for generation, (count, seconds) in sorted(after.items()):
        count -= before.get(generation, [0.0, 0.0])[0]
        seconds -= before.get(generation, [0.0, 0.0])[1]
        during[generation] = {
            "collections": int(count),
            "pause_ms_total": round(seconds * 1000, 1),
            "pause_ms_mean": round(seconds * 1000 / count, 2) if count else 0.0,
        }
    return during


# --------------------------------------------------------------------------- the run


@dataclass
class Bench:
    args: argparse.Namespace
    stack: LocalStack
    business: Business
    tokens_file: Path
    keys_file: Path
    roots: dict[str, int]
    first_slot: int
    next_slot: int = 0
    phases: list[Phase] = field(default_factory=list)
    booked: list[str] = field(default_factory=list)

    async def phase(self, name: str, url: str | list[str], load: Load, **kwargs: Any) -> Phase:
        """One phase against `url`, or against every gateway replica at once (the list
        stack.gateway_urls)."""
        load.tokens_file = load.tokens_file or self.tokens_file
        load.service_id = self.business.service_id
        load.location_id = self.business.location_id
        load.first_slot = self.first_slot
        load.slot_base = self.next_slot
        load.slot_seconds = SERVICE_MINUTES * 60
        print(f"  {name} ...", flush=True)
        database, redis = self.stack.env["DATABASE_URL"], self.stack.env["REDIS_URL"]
        counted = await store_counts(database, redis)
        done = await run_phase(name, url, load, self.roots, **kwargs)
        done.counts = counted_between(counted, await store_counts(database, redis))
        self.next_slot = max(self.next_slot, done.run.max_slot + 1)
        # Bookings made through the stack's gateways (any of them) can be cancelled
        # later; a floor's cannot.
        if set([url] if isinstance(url, str) else url) <= set(self.stack.gateway_urls):
            self.booked.extend(done.run.booked)
        self.phases.append(done)
        return done

    async def against_floor(
        self,
        path: str,
        kind: str,
        floor_url: str,
        floor_name: str,
        full_url: str | list[str] | None = None,
    ) -> dict[str, Any]:
        """Each target's peak over --peak-connections, saturation in turns at that
        count, then each target in an open loop at half its own peak. The full side is
        the stack's gateways unless `full_url` names another (the prototype)."""
        a = self.args
        full_url = full_url or self.stack.gateway_urls
        targets: tuple[tuple[str, str | list[str]], ...] = (
            ("full", full_url),
            ("floor", floor_url),
        )
        await self.greet_every_token()
        for who, url in targets:
            await self.phase(
                f"{path} {who} warm-up",
                url,
                Load(kind, "closed", a.connections, a.warmup, token_order="sequential"),
            )
        probes = {who: await self.probe_connections(path, who, kind, url) for who, url in targets}
        peak_connections = {
            who: at_peak(rates) if rates else a.peak_connections[0] for who, rates in probes.items()
        }
        turns: dict[str, list[Phase]] = {"full": [], "floor": []}
        scraped_before = await self.gateway_metrics()
        for turn in range(a.turns):
            for who, url in targets:
                turns[who].append(
                    await self.phase(
                        f"{path} {who} saturation {turn + 1}/{a.turns}"
                        f" ({peak_connections[who]} connections)",
                        url,
                        Load(
                            kind,
                            "closed",
                            peak_connections[who],
                            a.seconds / a.turns,
                            drain_seconds=a.drain_seconds,
                        ),
                    )
                )
        batches_at_saturation = hold_batches_during(scraped_before, await self.gateway_metrics())
        result: dict[str, Any] = {
            "floor": floor_name,
            "connections": peak_connections,
            "probes_per_second": {
                who: {str(count): rate for count, rate in rates.items()}
                for who, rates in probes.items()
            },
        }
        for who, url in targets:
            peak = merged(turns[who], DONE[path])
            before = await self.gateway_metrics() if who == "full" else None
            half = await self.phase(
                f"{path} {who} open loop",
                url,
                # At least one a second: a saturation turn too short for any unit to
                # finish (a tiny run on a busy machine) still gets an open loop.
                Load(
                    kind,
                    "open",
                    a.open_connections,
                    a.open_seconds,
                    rate=(
                        a.open_rate
                        if who == "full" and a.open_rate
                        else max(1.0, peak["per_second"] / 2)
                    ),
                ),
            )
            result[who] = {"saturation": peak, "half_rate": open_summary(half, DONE[path])}
            if before is not None:
                after = await self.gateway_metrics()
                result[who]["half_rate"]["gateway_gc"] = gc_during(before.gc, after.gc)
                result[who]["half_rate"]["hold_batches"] = hold_batches_during(before, after)
                result[who]["saturation"]["hold_batches"] = batches_at_saturation
        full_rate = result["full"]["saturation"]["per_second"]
        floor_rate = result["floor"]["saturation"]["per_second"]
        result["ratio"] = round(full_rate / floor_rate, 3) if floor_rate else None
        return result

    async def probe_connections(
        self, path: str, who: str, kind: str, url: str | list[str]
    ) -> dict[int, float]:
        """Units per second at each of --peak-connections, a short closed run each (none
        tried when there is only one).

        A target's peak needs as many requests at once as keep every stage of it busy:
        one process (a floor) is busy with a few dozen, while the full path's stages (the
        gateway, a batch in hold-service, Redis) take turns with each other unless there
        are enough requests for all of them at once. Each target is measured at its own
        peak, as "throughput at saturation" means."""
        a = self.args
        counts = sorted(set(a.peak_connections))
        if len(counts) == 1:
            return {}
        rates: dict[int, float] = {}
        for count in counts:
            probe = await self.phase(
                f"{path} {who} at {count} connections",
                url,
                Load(kind, "closed", count, a.probe_seconds),
            )
            rates[count] = merged([probe], DONE[path])["per_second"]
        return rates

    async def gateway_metrics(self) -> GatewayMetrics:
        """Every gateway's counts so far, summed: garbage-collector pauses per generation
        (collections, seconds they stopped the gateway) and hold batches sent."""
        scraped = GatewayMetrics()
        async with aiohttp.ClientSession() as http:
            for url in self.stack.gateway_urls:
                async with http.get(f"{url}/metrics") as answer:
                    text = await answer.text()
                for family in text_string_to_metric_families(text):
                    for sample in family.samples:
                        if family.name == "calendence_gc_pause_seconds":
                            kept = scraped.gc.setdefault(sample.labels["generation"], [0.0, 0.0])
                        elif family.name == "calendence_hold_batch_size":
                            kept = scraped.hold_batches
                        else:
                            continue
                        if sample.name.endswith("_count"):
                            kept[0] += sample.value
                        elif sample.name.endswith("_sum"):
                            kept[1] += sample.value
        return scraped

    async def greet_every_token(self) -> None:
        """One cheap request per session token (releasing a hold that does not exist:
        404), so that the gateway has seen every token before anything is measured, as
        it has in steady use, however few requests a warm-up gets through."""
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.args.connections),
            timeout=aiohttp.ClientTimeout(total=120),
        ) as http:

            async def greet(token: str) -> int:
                async with http.delete(
                    f"{self.stack.gateway_url}/api/v1/bookings/hold/{uuid.uuid4()}",
                    headers={"Authorization": f"Bearer {token}"},
                ) as answer:
                    await answer.read()
                    return answer.status

            answers = Counter(await asyncio.gather(*map(greet, self.business.sessions)))
        if set(answers) != {404}:
            raise RuntimeError(f"greeting every session token: {dict(answers)} (404s expected)")

    async def race(self) -> dict[str, Any]:
        """`racers` session tokens ask for one slot at once, `rounds` times: exactly one
        201 per round, every other answer a 409 (anything else fails the run)."""
        a = self.args
        tokens = self.business.sessions[: a.racers]
        rounds: list[dict[str, int]] = []
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
        ) as http:

            async def hold(token: str, body: bytes) -> int:
                async with http.post(
                    self.stack.gateway_url + "/api/v1/bookings/hold",
                    data=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                    },
                ) as answer:
                    await answer.read()
                    return answer.status

            for _ in range(a.rounds):
                starts_at = datetime.fromtimestamp(
                    self.first_slot + self.next_slot * SERVICE_MINUTES * 60, UTC
                )
                self.next_slot += 1
                body = orjson.dumps(
                    {
                        "service_id": self.business.service_id,
                        "location_id": self.business.location_id,
                        "starts_at": starts_at.isoformat(),
                    }
                )
                answers = await asyncio.gather(*(hold(token, body) for token in tokens))
                rounds.append({str(k): v for k, v in sorted(Counter(answers).items())})
        return {"racers": len(tokens), "rounds": rounds}

    async def events(self, receiver: Receiver, receiver_url: str) -> dict[str, Any]:
        a = self.args
        await self.phase_settled()
        endpoint_key = self.business.keys[0]
        api_http = aiohttp.ClientSession()
        try:
            endpoint = await Api(api_http, self.stack.gateway_url).post(
                "/api/v1/webhook-endpoints",
                endpoint_key,
                {"url": receiver_url, "description": "bench receiver"},
            )
        finally:
            await api_http.close()
        receiver.secret = endpoint["secret"]
        needed = a.cancels * 2
        while len(self.booked) < needed:
            had = len(self.booked)
            # Every gateway, as the full path's phases.
            await self.phase(
                "events: more bookings to cancel",
                self.stack.gateway_urls,
                Load("book", "closed", a.connections, max(1.0, a.seconds / a.turns)),
            )
            if len(self.booked) == had:
                raise RuntimeError("a booking phase made no booking to cancel")
        burst_ids, rest = self.booked[: a.cancels], self.booked[a.cancels : needed]
        self.booked = self.booked[needed:]

        burst = await self.cancel_phase(
            f"events: {a.in_flight} cancellations in flight",
            Load("cancel", "closed", a.in_flight, a.event_timeout, ids=burst_ids, threads=1),
            receiver,
        )
        rate = burst["cancels_per_second"] / 2
        open_ids = rest[: max(1, int(rate * a.open_seconds))]
        half = await self.cancel_phase(
            "events: open loop at half that rate",
            Load(
                "cancel",
                "open",
                a.in_flight,
                a.event_timeout,
                rate=rate,
                ids=open_ids,
                threads=1,
            ),
            receiver,
        )
        return {"in_flight": a.in_flight, "saturation": burst, "half_rate": half}

    async def cancel_phase(self, name: str, load: Load, receiver: Receiver) -> dict[str, Any]:
        load.tokens_file = self.keys_file
        arrived = receiver.expect(load.ids)

        async def arrived_and_answered() -> None:
            await arrived.wait()
            # wrk counts an answer when it reads it, and a webhook can arrive before its
            # DELETE's answer has reached wrk: stopped at once, wrk would miss that one.
            await asyncio.sleep(ANSWERS_IN_FLIGHT_SECONDS)

        waited = asyncio.ensure_future(arrived_and_answered())
        try:
            phase = await self.phase(name, self.stack.gateway_urls, load, finished=waited)
        finally:
            waited.cancel()
        answered = {b: (s, a, status) for b, s, a, status in phase.run.answered}
        after_answer = [
            (receiver.arrivals[b] * 1e6 - a)
            for b, (_, a, _) in answered.items()
            if b in receiver.arrivals
        ]
        after_schedule = [
            (receiver.arrivals[b] * 1e6 - s)
            for b, (s, _, _) in answered.items()
            if b in receiver.arrivals
        ]
        ends = [receiver.arrivals[b] for b in load.ids if b in receiver.arrivals]
        first_sent = min((s for s, _, _ in answered.values()), default=0.0) / 1e6
        span = (max(ends) - first_sent) if ends else 0.0
        cancelled = phase.units(DONE["events"])
        return {
            "cancellations": len(load.ids),
            "answered": len(answered),
            "webhooks_arrived": len(ends),
            "webhooks_missing": len(load.ids) - len(ends),
            "cancels_per_second": round(len(ends) / span, 1) if span else 0.0,
            "target_rate": round(load.rate, 1) if load.mode == "open" else None,
            "answer_to_webhook": latency_summary(after_answer),
            "schedule_to_webhook": latency_summary(after_schedule),
            "delete_latency": latency_summary(phase.run.latencies_us)
            if load.mode == "open"
            else {
                "p50_ms": phase.run.wrk_latency_us.get("50", 0) / 1000,
                "p99_ms": phase.run.wrk_latency_us.get("99", 0) / 1000,
            },
            "statuses": dict(sorted(phase.run.statuses.items())),
            "cpu_us_per_unit": {
                k: round(v, 1) for k, v in phase.cpu_us_per(cancelled or len(ends)).items()
            },
            "store_counts_per_unit": phase.counts_per(cancelled or len(ends)),
        }

    async def phase_settled(self) -> None:
        from loadgen import settle

        await settle(self.roots)


def process_roots(stack: LocalStack, extra: dict[str, ManagedProcess]) -> dict[str, int]:
    roots = {name: process.pid for name, process in stack.services.items()}
    roots |= {name: stack.stores[name].process.pid for name in ("postgres", "redis", "nats")}
    if "smtp" in stack.stores:  # none when SMTP_URL names a server of one's own
        roots[MAIL_STAND_IN] = stack.stores["smtp"].process.pid
    roots |= {name: process.pid for name, process in extra.items()}
    return roots


async def idle_cpu(roots: dict[str, int], seconds: float) -> dict[str, float]:
    before = cpu_seconds(roots)
    await asyncio.sleep(seconds)
    return {k: round(v / seconds * 100, 2) for k, v in spent(before, cpu_seconds(roots)).items()}


async def benchmark(args: argparse.Namespace, stack: LocalStack, scratch: Path) -> dict[str, Any]:
    load_at_start = os.getloadavg()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100), timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        print(f"making a business, {args.keys} keys and {args.sessions} session tokens ...")
        business = await create_business(
            Api(http, stack.gateway_url), stack, args.keys, args.sessions
        )
    tokens_file, keys_file = scratch / "sessions.txt", scratch / "keys.txt"
    tokens_file.write_text("\n".join(business.sessions) + "\n")
    keys_file.write_text("\n".join(business.keys) + "\n")
    naive_env = {"NAIVE_SERVICE_MINUTES": str(SERVICE_MINUTES)}
    naive_hold, naive_hold_url = start_naive("naive-hold-app", stack, naive_env)
    naive_book, naive_book_url = start_naive(
        "naive-book-app", stack, naive_env | {"NAIVE_BUSINESS_ID": business.business_id}
    )
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    floors = {"naive-hold-app": naive_hold, "naive-book-app": naive_book}
    prototype_url = None
    if args.prototype and "holds" in args.paths:
        prototype_service, prototype_addr = start_naive("prototype-hold-service", stack, {})
        prototype_app, prototype_url = start_naive(
            "prototype-hold-app",
            stack,
            naive_env | {"PROTOTYPE_HOLDS_ADDR": prototype_addr.removeprefix("http://")},
        )
        floors |= {PROTOTYPE_APP: prototype_app, PROTOTYPE_SERVICE: prototype_service}
    roots = process_roots(stack, floors) | {"bench receiver": os.getpid()}
    bench = Bench(args, stack, business, tokens_file, keys_file, roots, first_slot_tomorrow())
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in load_at_start],
        },
        "settings": {k: v for k, v in vars(args).items() if k != "results_dir"}
        | {"service_env": "as make run sets it", "wrk": wrk_version()},
    }
    try:
        results["idle_cpu_percent"] = await idle_cpu(roots, args.idle_seconds)
        if "holds" in args.paths:
            full = "the prototype" if prototype_url else "full path"
            print(f"holds: {full} against bench/naive_hold_app.py", flush=True)
            results["holds"] = await bench.against_floor(
                "holds", "hold", naive_hold_url, "bench/naive_hold_app.py", prototype_url
            )
            print(f"holds: {args.racers} clients racing for one slot, {args.rounds} rounds")
            results["holds"]["race"] = await bench.race()
        if "book" in args.paths or "events" in args.paths:
            print("hold then book: full path against bench/naive_book_app.py", flush=True)
            results["book"] = await bench.against_floor(
                "book", "book", naive_book_url, "bench/naive_book_app.py"
            )
        if "events" in args.paths:
            print("events: DELETE answered -> booking.cancelled webhook received", flush=True)
            results["events"] = await bench.events(receiver, f"http://127.0.0.1:{port}/hook")
            results["events"]["bad_signatures"] = receiver.bad_signatures
            results["events"]["duplicates"] = receiver.duplicates
    finally:
        await runner.cleanup()
        for process in floors.values():
            process.stop()
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["phases"] = [
        {
            "name": p.name,
            "statuses": dict(sorted(p.run.statuses.items())),
            "socket_errors": {
                k: v for k, v in p.run.errors.items() if k in ("connect", "read", "write")
            },
            "seconds": round(p.run.seconds, 2),
            "cpu_seconds": {k: round(v, 3) for k, v in p.cpu.items()},
        }
        for p in bench.phases
    ]
    results["failures"] = failures(bench.phases, results)
    return results


# More answers than this share of a phase's being client errors other than 409 (a slot
# outside the booking policy, a rate limit, a bad request) means the phase measured
# refusals instead of the path: its figures are not reported as valid.
UNEXPECTED_4XX_SHARE = 0.01


def failures(phases: list[Phase], results: dict[str, Any]) -> list[str]:
    """What makes the run fail: any 5xx, socket error, lost or badly signed webhook, or
    client errors other than 409 in more than UNEXPECTED_4XX_SHARE of a phase's answers."""
    found = []
    for phase in phases:
        for key, number in phase.five_hundreds().items():
            found.append(f"{phase.name}: {number} x {key}")
        refused = phase.unexpected_client_errors()
        answers = sum(n for key, n in phase.run.statuses.items() if not key.startswith("connect"))
        if refused and sum(refused.values()) > UNEXPECTED_4XX_SHARE * answers:
            found.append(
                f"{phase.name}: "
                + ", ".join(f"{n} x {key}" for key, n in sorted(refused.items()))
                + f" of {answers} answers (client errors other than 409: figures invalid)"
            )
        for name in ("connect", "read", "write"):
            if phase.run.errors.get(name):
                found.append(f"{phase.name}: {phase.run.errors[name]} socket {name} errors")
        if phase.run.statuses.get("unknown"):
            found.append(f"{phase.name}: answers without the request id sent")
    for number, answers in enumerate(results.get("holds", {}).get("race", {}).get("rounds", [])):
        if answers.get("201") != 1 or set(answers) - {"201", "409"}:
            found.append(f"race round {number + 1}: {answers} (one 201, the rest 409 expected)")
    events = results.get("events", {})
    for part in ("saturation", "half_rate"):
        missing = events.get(part, {}).get("webhooks_missing")
        if missing:
            found.append(f"events {part}: {missing} booking.cancelled webhooks never arrived")
    if events.get("bad_signatures"):
        found.append(f"events: {events['bad_signatures']} webhooks with a bad signature")
    return found


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).splitlines()[0].split(" [")[0]


# --------------------------------------------------------------------------- report


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:,.1f}{unit}"


def by_service(cpu: dict[str, float]) -> dict[str, float]:
    """Every replica's CPU under its service's name (`gateway-2` counts as `gateway`)."""
    grouped: dict[str, float] = {}
    for name, value in cpu.items():
        try:
            key = service_of(name)
        except KeyError:  # a store, the load, a floor
            key = name
        grouped[key] = grouped.get(key, 0.0) + value
    return grouped


def peaks(result: dict[str, Any]) -> str:
    """At which connection count each target peaked, and what it did at each tried."""
    parts = []
    for who in ("full", "floor"):
        tried = result["probes_per_second"][who]
        rates = ", ".join(f"{count}: {fmt(rate)}" for count, rate in tried.items())
        parts.append(
            f"{who} at {result['connections'][who]} connections"
            + (f" (tried {rates}/s)" if tried else "")
        )
    return "; ".join(parts)


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Calendence bench, {results['started_at']}: {m['cpus']} CPUs; load average "
        f"{m['load_average_at_start'][0]:.2f} at start, {m['load_average_at_end'][0]:.2f} at end "
        "(other work on the machine weighs on every figure)",
        f"replicas of each service: {results['settings'].get('replicas', 1)}; PostgreSQL "
        + (
            "flushing every commit to the disk (--durable)"
            if results["settings"].get("durable")
            else "not flushing commits to the disk (as make run)"
        ),
        "",
        f"{'path':<12}{'full/s':>9}{'floor/s':>9}{'ratio':>7}   "
        f"{'open loop at half the full rate (from schedule)':<49}{'floor, same at its half':<30}",
    ]
    prototype = bool(results["settings"].get("prototype")) and "holds" in results
    names = {"holds": "prototype" if prototype else "holds", "book": "hold+book"}
    if prototype:
        lines.insert(
            -1,
            "holds: full/s is the design's prototype (bench/prototype_hold_app.py and "
            "bench/prototype_hold_service.py), not the stack",
        )
    for path in ("holds", "book"):
        if path not in results:
            continue
        r = results[path]
        full, floor = r["full"], r["floor"]

        def at_half(side: dict[str, Any]) -> str:
            half = side["half_rate"]
            lat = half["latency_from_schedule"]
            return (
                f"{fmt(half['achieved_rate'])}/s p50 {fmt(lat['p50_ms'])} p99 {fmt(lat['p99_ms'])}"
                f" p99.9 {fmt(lat['p99_9_ms'])} ms"
            )

        lines.append(
            f"{names[path]:<12}{fmt(full['saturation']['per_second']):>9}"
            f"{fmt(floor['saturation']['per_second']):>9}{r['ratio'] or 0:>6.2f}x   "
            f"{at_half(full):<49}{at_half(floor)}"
        )
    for path in ("holds", "book"):
        if path in results:
            lines.append(f"{'':<12}{names[path]} at saturation: " + peaks(results[path]))
    # The stack's gateway counts these, not the prototype's.
    stack_paths = ("book",) if prototype else ("holds", "book")
    for path in stack_paths:
        gc = results.get(path, {}).get("full", {}).get("half_rate", {}).get("gateway_gc")
        if gc:
            lines.append(
                f"{'':<12}{names[path]} open loop, gateway garbage collections: "
                + "; ".join(
                    f"gen {g} x{c['collections']} mean {fmt(c['pause_ms_mean'])} ms"
                    for g, c in gc.items()
                )
            )
    for path in ("holds", "book"):
        half_rate = results.get(path, {}).get("full", {}).get("half_rate", {})
        if waited := half_rate.get("waited_us_per_unit"):
            longest = sorted(by_service(waited).items(), key=lambda kv: -kv[1])
            lines.append(
                f"{'':<12}{names[path]} open loop, waiting for a core, microseconds per unit: "
                + ", ".join(f"{name} {fmt(us)}" for name, us in longest if us >= 0.5)
            )
    for path in ("holds", "book"):
        full = results.get(path, {}).get("full", {})
        if "cpu_us_per_unit" in full.get("half_rate", {}):
            # Calls carry fewer units when fewer arrive together: each hop's fixed cost
            # (a wake-up per message in every process) is shared by fewer, so half the
            # peak rate can keep the cores busier than half.
            saturation, half_rate = full["saturation"], full["half_rate"]
            lines.append(
                f"{'':<12}{names[path]} open loop, the stack's CPU per unit: "
                f"{fmt(stack_cpu(half_rate['cpu_us_per_unit']))} microseconds at "
                f"{fmt(half_rate['achieved_rate'])}/s, against "
                f"{fmt(stack_cpu(saturation['cpu_us_per_unit']))} at saturation "
                f"({fmt(saturation['per_second'])}/s)"
            )
            if half_rate.get("runs_per_unit") and saturation.get("runs_per_unit"):
                open_runs = by_service(half_rate["runs_per_unit"])
                peak_runs = by_service(saturation["runs_per_unit"])
                lines.append(
                    f"{'':<12}{names[path]} wake-ups per unit (times a thread was put on a "
                    f"core), the stack: {fmt(stack_cpu(open_runs))} in the open loop, "
                    f"{fmt(stack_cpu(peak_runs))} at saturation; by process, open loop "
                    "(saturation): "
                    + ", ".join(
                        f"{name} {fmt(n)} ({fmt(peak_runs.get(name, 0.0))})"
                        for name, n in sorted(open_runs.items(), key=lambda kv: -kv[1])
                        if name not in NOT_THE_STACK and n >= 0.05
                    )
                )
    full_holds = results.get("holds", {}).get("full", {})
    if "hold_batches" in full_holds.get("saturation", {}) and not prototype:
        peak_batches = full_holds["saturation"]["hold_batches"]
        half_batches = full_holds["half_rate"]["hold_batches"]
        lines.append(
            f"{'':<12}holds per PlaceHolds call (coalesced): at saturation "
            f"{fmt(peak_batches['mean_holds_per_call'])}, "
            f"in the open loop {fmt(half_batches['mean_holds_per_call'])}"
        )
    race = results.get("holds", {}).get("race")
    if race:
        lines.append(
            f"{'race':<12}{race['racers']} clients for one slot, answers per round: "
            + "; ".join(", ".join(f"{k} x{v}" for k, v in r.items()) for r in race["rounds"])
        )
    if "events" in results:
        e = results["events"]
        for part, label in (
            ("saturation", f"{e['in_flight']} in flight"),
            ("half_rate", "open loop"),
        ):
            s = e[part]
            lat = s["answer_to_webhook"]
            lines.append(
                f"{'events':<12}{fmt(s['cancels_per_second']):>9}{'':>9}{'':>7}   "
                f"{label}: DELETE answered -> webhook p50 {fmt(lat['p50_ms'])} p99 "
                f"{fmt(lat['p99_ms'])} p99.9 {fmt(lat['p99_9_ms'])} ms"
                + (
                    f" (from schedule p99 {fmt(s['schedule_to_webhook']['p99_ms'])} ms)"
                    if part == "half_rate"
                    else ""
                )
            )
    lines += [
        "",
        "CPU microseconds per unit at saturation (holds: per hold; hold+book: per booking,",
    ]
    lines.append("both requests; events: per cancellation, its webhook included)")
    columns: list[tuple[str, dict[str, float]]] = []
    counts: list[dict[str, float]] = []
    for path in ("holds", "book"):
        if path in results:
            for target in ("full", "floor"):
                saturation = results[path][target]["saturation"]
                cpu = saturation["cpu_us_per_unit"]
                columns.append(
                    (names[path], by_service(cpu)) if target == "full" else ("floor", cpu)
                )
                counts.append(saturation.get("store_counts_per_unit", {}))
    if "events" in results:
        saturation = results["events"]["saturation"]
        columns.append(("events", by_service(saturation["cpu_us_per_unit"])))
        counts.append(saturation.get("store_counts_per_unit", {}))
    rows = [
        *STACK_PROCESSES,
        "naive-hold-app",
        "naive-book-app",
        *((PROTOTYPE_APP, PROTOTYPE_SERVICE) if prototype else ()),
        MAIL_STAND_IN,
        "bench receiver",
        "wrk",
    ]
    lines.append(f"{'process':<18}" + "".join(f"{name:>12}" for name, _ in columns))
    for row in rows:
        if row == "bench receiver" and "events" not in results:
            continue
        # The receiver runs in this process, which also samples /proc: only the events
        # column counts it as part of the path.
        cells = [
            "-" if row == "bench receiver" and name != "events" else fmt(cpu.get(row, 0.0))
            for name, cpu in columns
        ]
        lines.append(f"{row:<18}" + "".join(f"{cell:>12}" for cell in cells))
    totals = [stack_cpu(cpu) for _, cpu in columns]
    lines.append(f"{'all but the load':<18}" + "".join(f"{fmt(v):>12}" for v in totals))
    lines.append(
        f"({MAIL_STAND_IN}: make run's local SMTP server, keeping each client email as a file"
    )
    lines.append("where production hands it to a mail provider; counted with the load)")
    lines += ["", "What the stores answered per unit at saturation (counts: they do not swing"]
    lines.append("with the machine's load; Redis counts the commands its scripts run too)")
    lines.append(f"{'store':<22}" + "".join(f"{name:>10}" for name, _ in columns))
    for row in STORE_COUNTS:
        lines.append(f"{row:<22}" + "".join(f"{per.get(row, math.nan):>10.2f}" for per in counts))
    statuses: Counter[str] = Counter()
    for phase in results["phases"]:
        statuses.update(phase["statuses"])
    lines += ["", "answers counted: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))]
    if results["failures"]:
        lines += ["", "FAILED:", *(f"  {f}" for f in results["failures"])]
    return "\n".join(lines)


# The wrk connection counts each target of the holds and hold+book paths is tried at
# before its turns at saturation, which run at the count of its highest rate.
PEAK_CONNECTIONS = (32, 64, 128, 256, 512)
TINY_PEAK_CONNECTIONS = (4, 8)


class Measure(NamedTuple):
    """A numeric option of the run: its default, and its value under --tiny (None: the
    same as without)."""

    flag: str
    kind: Callable[[str], float]
    default: float
    tiny: float | None
    help: str


MEASURES = (
    # Under --tiny, enough tokens that their rate limits (10/s each, as `make run` sets
    # them) stay above what 8 connections get through on a fast machine.
    Measure("--sessions", int, 1000, 400, "session tokens (%(default)s)"),
    Measure("--keys", int, 10, 2, "business API keys (%(default)s)"),
    Measure(
        "--connections", int, 64, 8, "wrk connections in warm-ups and events bookings (%(default)s)"
    ),
    Measure("--probe-seconds", float, 3, 1, "seconds at each of --peak-connections (%(default)s)"),
    Measure("--open-connections", int, 100, 8, "wrk connections in open loops (%(default)s)"),
    # Under --tiny, three seconds at saturation: a pair of requests still finishes on a
    # busy machine.
    Measure("--seconds", float, 12, 3, "saturation seconds per target (%(default)s)"),
    Measure("--turns", int, 3, 1, "turns full path and floor take (%(default)s)"),
    Measure("--warmup", float, 4, 1, "warm-up seconds per target (%(default)s)"),
    # A turn at saturation starts no new hold or booking after its seconds and waits this
    # long for what is under way, so that it counts every unit the stack worked on.
    Measure("--drain-seconds", float, 2, 1, "end of each turn at saturation (%(default)s s)"),
    Measure("--open-seconds", float, 10, 1, "open loop seconds (%(default)s)"),
    # Two versions compared at the same rate: at half its own peak, the faster one
    # would be measured under more load.
    Measure("--open-rate", float, 0, None, "open-loop units/s, full holds and hold+book (0: half)"),
    Measure("--cancels", int, 300, 10, "cancellations per events phase (%(default)s)"),
    Measure("--in-flight", int, 50, 5, "cancellations in flight (%(default)s)"),
    Measure("--event-timeout", float, 60, None, "longest events phase (%(default)s s)"),
    Measure("--idle-seconds", float, 2, 0.5, "idle CPU sample (%(default)s s)"),
    Measure("--racers", int, 500, 20, "clients racing for a slot"),
    Measure("--rounds", int, 5, 2, "rounds of that race (%(default)s)"),
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    for measure in MEASURES:
        parser.add_argument(
            measure.flag, type=measure.kind, default=measure.default, help=measure.help
        )
    parser.add_argument(
        "--peak-connections",
        type=int,
        nargs="+",
        default=list(PEAK_CONNECTIONS),
        help="wrk connections each target is tried at, for its peak (%(default)s); "
        "one count: measured at that count, untried",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="processes of each service (1); wrk drives every gateway replica at once",
    )
    parser.add_argument(
        "--durable",
        action="store_true",
        help="PostgreSQL flushing every commit to the disk, as in production (make run: off)",
    )
    parser.add_argument(
        "--prototype",
        action="store_true",
        help="holds: the design's prototype in the full path's place (what the rules cost)",
    )
    parser.add_argument("--tiny", action="store_true", help="seconds per phase: proves it works")
    parser.add_argument("--keep-stack", action="store_true", help="keep the stack's folder")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.tiny:
        for measure in MEASURES:
            if measure.tiny is not None:
                setattr(args, measure.flag.removeprefix("--").replace("-", "_"), measure.tiny)
        args.peak_connections = list(TINY_PEAK_CONNECTIONS)
    with throwaway_stack(
        keep=args.keep_stack, replicas=args.replicas, durable=args.durable
    ) as stack:
        scratch = stack.state_dir / "bench"
        scratch.mkdir(exist_ok=True)
        results = uvloop.run(benchmark(args, stack, scratch))
    text = report(results)
    print("\n" + text)
    write_results(args.results_dir, "bench", results, text)
    sys.exit(1 if results["failures"] else 0)


if __name__ == "__main__":
    main()
