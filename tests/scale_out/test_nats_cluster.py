"""Events survive a NATS node that dies or hangs while bookings are being made.

The stack runs a three-node NATS cluster; the events stream and notify-service's
consumer keep three copies, and every client knows every server. Two replicas of each
service book through both gateways meanwhile, and the business's webhook receiver
counts what arrives by `webhook-id`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from calendence import events
from calendence.devstack.nats_cluster import NatsNode, wait_until_healthy
from calendence.devstack.stack import CLUSTER_STREAM_REPLICAS, LocalStack
from calendence.settings import CommonSettings
from nats.aio.client import Client as NatsClient

from tests.api import Api
from tests.scale_out.load import (
    ACCEPTED_STATUSES,
    BookingLoad,
    start_load,
    wait_until_booked,
    webhooks_of,
)
from tests.webhook_receiver import WebhookReceiver

NOTIFY_CONSUMER = "notify-service"
# How long a client keeps a server that stopped answering pings (the defaults).
_defaults = CommonSettings()
CLIENT_FAILOVER_SECONDS = _defaults.nats_ping_interval_seconds * (
    _defaults.nats_max_outstanding_pings + 1
)


@pytest.fixture
async def nats_client(cluster_stack: LocalStack) -> AsyncIterator[NatsClient]:
    nc = await events.connect(cluster_stack.env["NATS_URL"], "test-nats-cluster")
    yield nc
    await nc.close()


async def stream_leader(stack: LocalStack, nc: NatsClient) -> NatsNode:
    """The node that leads the events stream now: the one whose loss hurts most."""
    assert stack.nats_nodes is not None
    info = await nc.jetstream().stream_info(events.EVENTS_STREAM)
    assert info.cluster is not None
    return next(node for node in stack.nats_nodes.nodes if node.name == info.cluster.leader)


def assert_every_event_arrived_once(
    load: BookingLoad, seen: dict[str, set[str]], receiver: WebhookReceiver
) -> None:
    missing = set(load.booked) - set(seen)
    assert not missing, f"{len(missing)} of {len(load.booked)} bookings' webhooks never came"
    under_several_ids = {booking: ids for booking, ids in seen.items() if len(ids) > 1}
    assert not under_several_ids, f"one event sent as several webhooks: {under_several_ids}"
    repeated = {
        i: n for i, n in Counter(r.webhook_id for r in receiver.at("/hook")).items() if n > 1
    }
    assert not repeated, f"webhooks delivered twice: {repeated}"


def assert_only_successes_or_503(load: BookingLoad) -> None:
    statuses = load.statuses()
    assert set(statuses) <= ACCEPTED_STATUSES, statuses
    assert not load.unavailable_without_retry_after()


async def test_events_stream_and_its_consumer_keep_three_copies(
    cluster_stack: LocalStack, nats_client: NatsClient
) -> None:
    js = nats_client.jetstream()
    stream = await js.stream_info(events.EVENTS_STREAM)
    consumer = await js.consumer_info(events.EVENTS_STREAM, NOTIFY_CONSUMER)
    assert stream.config.num_replicas == CLUSTER_STREAM_REPLICAS
    assert stream.cluster is not None and len(stream.cluster.replicas or []) == 2
    assert consumer.config.num_replicas == CLUSTER_STREAM_REPLICAS


async def test_killing_the_stream_leaders_node_loses_no_event_and_sends_none_twice(
    cluster_stack: LocalStack,
    cluster_apis: list[Api],
    cluster_hub: dict[str, str],
    nats_client: NatsClient,
) -> None:
    async with WebhookReceiver() as receiver:
        load = await start_load(cluster_apis, cluster_hub["key"], receiver)
        await wait_until_booked(load, 5)
        node = await stream_leader(cluster_stack, nats_client)
        node.process.kill()
        try:
            await wait_until_booked(load, 20, timeout=30)
            await load.stop()
            seen = await webhooks_of(set(load.booked), receiver, timeout=45)
        finally:
            await load.stop()
            await asyncio.to_thread(node.restart)
    assert_only_successes_or_503(load)
    assert_every_event_arrived_once(load, seen, receiver)


async def test_a_frozen_nats_node_is_left_behind_and_rejoins_losing_and_repeating_nothing(
    cluster_stack: LocalStack,
    cluster_apis: list[Api],
    cluster_hub: dict[str, str],
    nats_client: NatsClient,
) -> None:
    """SIGSTOP keeps the node's connections open while it answers nothing, as a hung
    machine or a partition does; clients must notice by themselves."""
    async with WebhookReceiver() as receiver:
        load = await start_load(cluster_apis, cluster_hub["key"], receiver)
        await wait_until_booked(load, 5)
        node = await stream_leader(cluster_stack, nats_client)
        os.kill(node.pid, signal.SIGSTOP)
        try:
            frozen_at = time.monotonic()
            await wait_until_booked(load, 10, timeout=30)
            made_while_frozen = dict(load.booked)
            # While the node still hangs, the events of bookings made meanwhile reach
            # the business: publishers and the consumer moved to the other nodes.
            seen_while_frozen = await webhooks_of(set(made_while_frozen), receiver, timeout=20)
            assert set(made_while_frozen) <= set(seen_while_frozen)
            left = CLIENT_FAILOVER_SECONDS + 2 - (time.monotonic() - frozen_at)
            await asyncio.sleep(max(0.0, left))
        finally:
            os.kill(node.pid, signal.SIGCONT)
        try:
            await asyncio.to_thread(wait_until_healthy, [node], 30)
            await wait_until_booked(load, 5, timeout=30)
            await load.stop()
            seen = await webhooks_of(set(load.booked), receiver, timeout=45)
        finally:
            await load.stop()
    assert_only_successes_or_503(load)
    assert_every_event_arrived_once(load, seen, receiver)
    # Back in the cluster as a follower, current with every event taken meanwhile.
    await until_current_follower(nats_client, node.name)


async def until_current_follower(nc: NatsClient, name: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stream = await nc.jetstream().stream_info(events.EVENTS_STREAM)
        assert stream.cluster is not None
        followers = {peer.name: peer for peer in stream.cluster.replicas or []}
        if name in followers and followers[name].current:
            return
        assert time.monotonic() < deadline, f"{name} is not a current follower: {stream.cluster}"
        await asyncio.sleep(0.2)
