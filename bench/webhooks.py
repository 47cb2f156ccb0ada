"""Webhook benchmark (issue 6): from a DELETE's answer to its booking.cancelled webhook.

    .venv/bin/python bench/webhooks.py
    .venv/bin/python bench/webhooks.py --bookings 500 --burst 100

It starts its own stack in a temporary folder (service_env LOG_LEVEL=WARNING and
WEBHOOKS_ALLOW_PRIVATE_TARGETS=true, so that notify-service may reach a receiver on
127.0.0.1), runs an aiohttp receiver in this process that verifies every signature,
registers it as a webhook endpoint for every event, books N bookings (and waits for
their booking.created webhooks), then cancels them in two phases:

1. one at a time: each DELETE is sent after the previous one's webhook arrived, so the
   figure is the path's latency with nothing else in flight;
2. burst: up to --burst DELETEs in flight at once, the rest queued behind them.

For each booking the time from the DELETE's answer (its last byte read) to the arrival
of its booking.cancelled webhook is measured; p50, p99 and max are printed and written
to bench/results/webhooks-<time>.json. The path in between: booking-service commits the
booking and its outbox row, the relay publishes to JetStream, notify-service's durable
consumer stores the event with its delivery and acks, its dispatcher claims the delivery
and POSTs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web
from calendence.devstack.processes import free_port
from calendence.devstack.stack import LocalStack
from standardwebhooks import Webhook

HERE = Path(__file__).resolve().parent
AROUND_THE_CLOCK = {
    day: [{"opens": "00:00", "closes": "24:00"}]
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
}
SERVICE_MINUTES = 30


@dataclass
class Receiver:
    """Keeps when each (booking, event type) arrived; checks every signature."""

    secret: str = ""
    arrivals: dict[tuple[str, str], float] = field(default_factory=dict)
    bad_signatures: int = 0
    duplicates: int = 0
    waiters: dict[tuple[str, str], asyncio.Future[float]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.perf_counter()
        try:
            Webhook(self.secret).verify(body, dict(request.headers), json_parse=False)
        except Exception:
            self.bad_signatures += 1
            return web.Response(status=400)
        document = orjson.loads(body)
        key = (document["data"]["id"], document["type"])
        if key in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[key] = arrived
            waiter = self.waiters.pop(key, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(arrived)
        return web.Response(status=204)

    def arrival(self, booking_id: str, event_type: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        key = (booking_id, event_type)
        if key in self.arrivals:
            future.set_result(self.arrivals[key])
        else:
            self.waiters[key] = future
        return future


@dataclass
class Phase:
    name: str
    seconds: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def ms(self, quantile: float) -> float:
        ordered = sorted(self.seconds)
        index = min(len(ordered) - 1, max(0, round(quantile * len(ordered)) - 1))
        return ordered[index] * 1000

    def summary(self) -> dict[str, Any]:
        return {
            "webhooks": len(self.seconds),
            "p50_ms": round(self.ms(0.50), 2),
            "p99_ms": round(self.ms(0.99), 2),
            "max_ms": round(max(self.seconds) * 1000, 2),
            "cancels_per_second": round(len(self.seconds) / self.elapsed, 1),
        }

    def line(self) -> str:
        s = self.summary()
        return (
            f"{self.name:<26} n={s['webhooks']:<5} p50 {s['p50_ms']:>8.2f} ms   "
            f"p99 {s['p99_ms']:>8.2f} ms   max {s['max_ms']:>8.2f} ms   "
            f"({s['cancels_per_second']:.0f} cancels/s)"
        )


class Api:
    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http = http
        self.base_url = base_url

    async def call(
        self,
        method: str,
        path: str,
        key: str,
        document: Any = None,
        expect: int = 201,
        headers: dict[str, str] | None = None,
    ) -> Any:
        async with self.http.request(
            method,
            self.base_url + path,
            json=document,
            headers={"Authorization": f"Bearer {key}", **(headers or {})},
        ) as answer:
            body = await answer.read()
            if answer.status != expect:
                raise RuntimeError(f"{method} {path}: {answer.status} {body!r}")
            return orjson.loads(body) if body else None


async def set_up(api: Api, stack: LocalStack, receiver_url: str) -> dict[str, Any]:
    hub = stack.admin("create-hub", "--name", "Bench Hub")
    hub_key = stack.admin("create-key", "--kind", "hub", "--hub-id", hub["id"])["token"]
    business = await api.call("POST", "/api/v1/businesses", hub_key, {"name": "Bench Business"})
    key = (
        await api.call(
            "POST", "/api/v1/api-keys", hub_key, headers={"Calendence-Business": business["id"]}
        )
    )["token"]
    location = await api.call(
        "POST",
        "/api/v1/locations",
        key,
        {"name": "Always Open", "timezone": "UTC", "opening_hours": AROUND_THE_CLOCK},
    )
    service = await api.call(
        "POST",
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
    endpoint = await api.call(
        "POST", "/api/v1/webhook-endpoints", key, {"url": receiver_url, "description": "bench"}
    )
    return {"key": key, "location": location, "service": service, "endpoint": endpoint}


async def book(api: Api, made: dict[str, Any], count: int, first: datetime) -> list[str]:
    token = (await api.call("POST", "/api/v1/sessions", made["key"]))["token"]
    semaphore = asyncio.Semaphore(20)

    async def one(index: int) -> str:
        starts_at = first + timedelta(minutes=SERVICE_MINUTES * index)
        async with semaphore:
            hold = await api.call(
                "POST",
                "/api/v1/bookings/hold",
                token,
                {
                    "service_id": made["service"]["id"],
                    "location_id": made["location"]["id"],
                    "starts_at": starts_at.isoformat(),
                },
            )
            booking = await api.call(
                "POST",
                "/api/v1/bookings",
                token,
                {
                    "hold_id": hold["hold_id"],
                    "client": {"first_name": "B", "last_name": "Ench", "email": "b@example.com"},
                },
            )
        return str(booking["id"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def cancel_and_time(
    api: Api, receiver: Receiver, key: str, booking_id: str, timeout: float
) -> float:
    arrival = receiver.arrival(booking_id, "booking.cancelled")
    await api.call("DELETE", f"/api/v1/bookings/{booking_id}", key, expect=200)
    answered = time.perf_counter()
    arrived = await asyncio.wait_for(arrival, timeout)
    return arrived - answered


async def benchmark(args: argparse.Namespace, stack: LocalStack) -> dict[str, Any]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            api = Api(http, stack.gateway_url)
            made = await set_up(api, stack, f"http://127.0.0.1:{port}/hook")
            receiver.secret = made["endpoint"]["secret"]
            first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
            total = args.bookings * 2
            print(f"booking {total} slots ...", flush=True)
            ids = await book(api, made, total, first)
            await asyncio.wait_for(
                asyncio.gather(*(receiver.arrival(b, "booking.created") for b in ids)), 60
            )
            sequential, burst = ids[: args.bookings], ids[args.bookings :]

            one_at_a_time = Phase("one at a time")
            started = time.perf_counter()
            for booking_id in sequential:
                one_at_a_time.seconds.append(
                    await cancel_and_time(api, receiver, made["key"], booking_id, args.timeout)
                )
            one_at_a_time.elapsed = time.perf_counter() - started
            print(one_at_a_time.line(), flush=True)

            in_burst = Phase(f"burst of {args.burst}")
            semaphore = asyncio.Semaphore(args.burst)

            async def limited(booking_id: str) -> float:
                async with semaphore:
                    return await cancel_and_time(
                        api, receiver, made["key"], booking_id, args.timeout
                    )

            started = time.perf_counter()
            in_burst.seconds = list(await asyncio.gather(*(limited(b) for b in burst)))
            in_burst.elapsed = time.perf_counter() - started
            print(in_burst.line(), flush=True)
            print(
                f"signatures failing: {receiver.bad_signatures}, "
                f"webhooks received twice: {receiver.duplicates}",
                flush=True,
            )
            return {
                "cpus": os.cpu_count(),
                "bookings_per_phase": args.bookings,
                "one_at_a_time": one_at_a_time.summary(),
                "burst": {"in_flight": args.burst, **in_burst.summary()},
                "bad_signatures": receiver.bad_signatures,
                "duplicates": receiver.duplicates,
            }
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bookings", type=int, default=200, help="bookings per phase")
    parser.add_argument("--burst", type=int, default=50, help="DELETEs in flight in the burst")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait per webhook")
    args = parser.parse_args()
    state_dir = Path(tempfile.mkdtemp(prefix="calendence-bench-"))
    stack = LocalStack(
        state_dir,
        persist=False,
        service_env={"LOG_LEVEL": "WARNING", "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"},
    )
    print(f"starting the stack in {state_dir} ...", flush=True)
    try:
        stack.start()
        results = uvloop.run(benchmark(args, stack))
    finally:
        stack.stop()
    out = HERE / "results" / f"webhooks-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
