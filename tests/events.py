"""Reading what reached JetStream, the way a durable consumer would."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import nats
import orjson
from calendence.events import EVENTS_STREAM, server_urls
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy


class EventTap:
    """A durable consumer of the events stream, created for one test."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self.name = f"test-{uuid.uuid4().hex[:12]}"
        self.events: list[dict[str, Any]] = []

    async def __aenter__(self) -> EventTap:
        self.nc = await nats.connect(servers=server_urls(self.nats_url))
        self.js = self.nc.jetstream()
        await self.js.add_consumer(
            EVENTS_STREAM,
            ConsumerConfig(
                durable_name=self.name,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW,
            ),
        )
        self.subscription = await self.js.pull_subscribe_bind(self.name, stream=EVENTS_STREAM)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.js.delete_consumer(EVENTS_STREAM, self.name)
        await self.nc.close()

    async def drain(self) -> None:
        try:
            messages = await self.subscription.fetch(100, timeout=0.3)
        except TimeoutError:  # nats-py raises its own subclass, or asyncio's at a deadline
            return
        for message in messages:
            self.events.append(orjson.loads(message.data))
            await message.ack()

    async def wait_for(
        self, booking_id: str, event_type: str, timeout: float = 5.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event["type"] == event_type and event["data"]["id"] == booking_id:
                    return event
            await self.drain()
            await asyncio.sleep(0.05)
        seen = [(e["type"], e["data"]["id"]) for e in self.events]
        raise AssertionError(f"no {event_type} for {booking_id} within {timeout}s; saw {seen}")

    def of(self, booking_id: str) -> list[str]:
        return [e["type"] for e in self.events if e["data"]["id"] == booking_id]
