"""Two replicas of every service on one set of stores, as `make run REPLICAS=2
CLUSTER=1` runs them: calls spread over the replicas, and losing one replica of each
service loses nothing and costs at most a 503 for the requests it was serving."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
from calendence.devstack.stack import LocalStack

from tests.api import Api
from tests.events import EventTap
from tests.scale_out.load import (
    ACCEPTED_STATUSES,
    open_business,
    start_load,
    wait_until_booked,
    webhooks_of,
)
from tests.webhook_receiver import WebhookReceiver

# The replica of each service the failure test kills: the second gateway (the test
# then books through the first), and the first of each gRPC service.
KILLED = ("gateway-2", "hold-service", "booking-service", "notify-service")


def rpc_counts(stack: LocalStack, name: str) -> Counter[str]:
    """RPCs a replica served, by method, from its access log (every call is logged)."""
    counts: Counter[str] = Counter()
    with open(stack.state_dir / "logs" / f"{name}.log", "rb") as log:
        for line in log:
            if b'"msg":"rpc"' in line:
                counts[orjson.loads(line)["method"]] += 1
    return counts


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stack_file_lists_every_gateway_and_every_process(cluster_stack: LocalStack) -> None:
    described = cluster_stack.describe()
    assert len(described["gateway_urls"]) == 2
    assert described["gateway_url"] == described["gateway_urls"][0]
    assert set(described["services"]) == {
        f"{service}{suffix}"
        for service in ("gateway", "hold-service", "booking-service", "notify-service")
        for suffix in ("", "-2")
    }
    assert {"postgres", "redis", "nats-1", "nats-2", "nats-3"} <= set(described["store_pids"])
    pids = [*described["services"].values(), *described["store_pids"].values()]
    assert len(set(pids)) == len(pids) and all(alive(pid) for pid in pids)
    assert described["stores"]["nats"].count("nats://") == 3


async def test_holds_and_bookings_through_both_gateways_spread_over_both_replicas_of_each_service(
    cluster_stack: LocalStack, cluster_apis: list[Api], cluster_hub: dict[str, str]
) -> None:
    before = {name: rpc_counts(cluster_stack, name) for name in cluster_stack.services}
    async with WebhookReceiver() as receiver:
        load = await start_load(cluster_apis, cluster_hub["key"], receiver)
        await wait_until_booked(load, 40)
        await load.stop()
    assert set(load.statuses()) == {201}
    for gateway in (0, 1):
        assert load.statuses(gateway)[201] >= 10
    for service, method in (
        ("hold-service", "/calendence.hold.v1.HoldService/PlaceHold"),
        ("booking-service", "/calendence.booking.v1.BookingService/CreateBooking"),
    ):
        served = [
            rpc_counts(cluster_stack, name)[method] - before[name][method]
            for name in (service, f"{service}-2")
        ]
        # Round robin: each replica takes about half, whichever gateway asked.
        assert min(served) >= sum(served) // 4, (service, served)


async def test_killing_one_replica_of_each_service_leaves_the_others_serving_and_loses_nothing(
    cluster_stack: LocalStack, cluster_apis: list[Api], cluster_hub: dict[str, str]
) -> None:
    async with WebhookReceiver() as receiver:
        load = await start_load(cluster_apis, cluster_hub["key"], receiver)
        try:
            await wait_until_booked(load, 10)
            killed_at = time.monotonic()
            for name in KILLED:
                cluster_stack.services[name].kill()
            # Bookings go on through the surviving gateway, on the surviving replicas.
            await wait_until_booked(load, 30)
            await load.stop()
            # Every booking it confirmed is there and its event reached the business.
            seen = await webhooks_of(set(load.booked), receiver, timeout=45)
        finally:
            await load.stop()
            try:
                shown = await asyncio.gather(
                    *(
                        load.salons[0].tenant.api.get(
                            f"/api/v1/bookings/{booking}", load.salons[0].tenant.business_key
                        )
                        for booking in load.booked
                    )
                )
            finally:
                await asyncio.to_thread(restart, cluster_stack, KILLED)
    survivor = load.statuses(0)
    assert set(survivor) <= ACCEPTED_STATUSES, survivor
    assert load.successes_after(killed_at, 0) >= 30
    # Through the killed gateway: its connections broke (None), or it answered before.
    assert set(load.statuses(1)) <= ACCEPTED_STATUSES | {None}, load.statuses(1)
    assert not load.unavailable_without_retry_after()
    print(f"\n503s while replicas died: {load.statuses()[503]} of {len(load.outcomes)} answers")
    assert [answer.status for answer in shown] == [200] * len(load.booked)
    assert all(answer.body["status"] == "confirmed" for answer in shown)
    missing = set(load.booked) - set(seen)
    assert not missing, f"{len(missing)} of {len(load.booked)} bookings' webhooks never came"
    assert all(len(ids) == 1 for ids in seen.values())


async def test_events_written_on_either_booking_service_replica_are_relayed_at_once(
    cluster_stack: LocalStack, cluster_apis: list[Api], cluster_hub: dict[str, str]
) -> None:
    # One replica relays the outbox; here it looks for events on its own only every
    # 60 s. Bookings made one at a time, so none rides along with another's wake-up:
    # those the other replica makes reach the relay by the message its commit sends.
    # Made until each replica made two (the gateways' channels reconnect to the
    # restarted replicas at their own pace), each booking's event within 5 s.
    replicas = ("booking-service", "booking-service-2")
    method = "/calendence.booking.v1.BookingService/CreateBooking"
    await asyncio.to_thread(restart_with, cluster_stack, replicas, {"OUTBOX_POLL_SECONDS": "60"})
    try:
        salons, _ = await open_business(cluster_apis, cluster_hub["key"])
        before = {name: rpc_counts(cluster_stack, name) for name in replicas}
        starts = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
        made = [0, 0]
        async with EventTap(cluster_stack.env["NATS_URL"]) as tap:
            for hour in range(60):
                booking = await salons[hour % 2].booking(starts + timedelta(hours=hour))
                await tap.wait_for(booking["id"], "booking.created", timeout=5)
                made = [
                    rpc_counts(cluster_stack, name)[method] - before[name][method]
                    for name in replicas
                ]
                if min(made) >= 2:
                    break
    finally:
        await asyncio.to_thread(restart_with, cluster_stack, replicas, {})
    assert min(made) >= 2, made


def restart_with(stack: LocalStack, names: tuple[str, ...], env: dict[str, str]) -> None:
    for name in names:
        stack.services[name].stop()
        stack.start_service(name, env)
    stack.wait_until_ready()


def restart(stack: LocalStack, names: tuple[str, ...]) -> None:
    stack.start_services(list(names))
    stack.wait_until_ready()
