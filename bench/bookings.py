"""Hold-then-book benchmark (issue 5): bookings per second through the whole path.

    make bench-bookings                   # or: .venv/bin/python bench/bookings.py
    .venv/bin/python bench/bookings.py --clients 16 --seconds 15

It starts its own stack (LOG_LEVEL=WARNING) in a temporary folder and the business of
bench/holds.py (a location open around the clock, a staff-less 30-minute service, no
deposit). Each of N concurrent clients, with its own session token, repeats what a
booking widget does: POST /api/v1/bookings/hold for a distinct future slot, then
POST /api/v1/bookings with that hold. A booking crosses the gateway, hold-service
(consume in Redis), booking-service (PostgreSQL transaction with its outbox event) and
the relay to JetStream, which notify-service consumes.

Printed: bookings per second, and p50/p99 of the pair (hold + book) and of the booking
call alone. Results also go to bench/results/bookings-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
from calendence.devstack.bench import run_on_fresh_stack
from calendence.devstack.stack import LocalStack
from holds import HERE, HOLD_PATH, SERVICE_ENV, Run, Slots, Target, create_business

BOOKING_BODY = {
    "client": {"first_name": "Bench", "last_name": "Client", "email": "bench@example.com"}
}


async def hold_then_book(
    http: aiohttp.ClientSession, target: Target, token: str, starts_at: str
) -> tuple[int, float, float]:
    """(booking status, seconds for hold + book, seconds for the booking call)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    started = time.perf_counter()
    async with http.post(
        target.url + HOLD_PATH, data=target.body(starts_at), headers=headers
    ) as held:
        hold = orjson.loads(await held.read())
        if held.status != 201:
            return held.status, time.perf_counter() - started, 0.0
    booked_at = time.perf_counter()
    async with http.post(
        target.url + "/api/v1/bookings",
        headers=headers,
        data=orjson.dumps({"hold_id": hold["hold_id"], **BOOKING_BODY}),
    ) as answer:
        await answer.read()
        now = time.perf_counter()
        return answer.status, now - started, now - booked_at


async def run(args: argparse.Namespace, stack: LocalStack) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        made = await create_business(http, stack, args.clients)
        target = Target("full path", stack.gateway_url, made["service_id"], made["location_id"])
        slots = Slots(
            datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        )
        pair, booking = Run("hold + book"), Run("book alone")
        deadline = time.perf_counter() + args.seconds

        async def client(token: str) -> None:
            while time.perf_counter() < deadline:
                status, both, alone = await hold_then_book(http, target, token, slots.next_start())
                pair.record(status, both)
                if alone:
                    booking.record(status, alone)

        started = time.perf_counter()
        await asyncio.gather(*(client(t) for t in made["tokens"]))
        pair.elapsed = booking.elapsed = time.perf_counter() - started
    for line in (pair.line(), booking.line()):
        print(line.replace("holds/s", "bookings/s"))
    return {
        "cpus": os.cpu_count(),
        "clients": args.clients,
        "seconds": args.seconds,
        "hold_and_book": pair.summary(),
        "book_alone": booking.summary(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--seconds", type=float, default=15, help="how long to run (15)")
    args = parser.parse_args()
    run_on_fresh_stack(
        "bookings",
        SERVICE_ENV,
        lambda stack: run(args, stack),
        HERE / "results",
    )


if __name__ == "__main__":
    main()
