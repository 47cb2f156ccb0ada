"""The durable JetStream consumer: take each event, record it, then ack.

Acking only after the work is stored means a crash redelivers instead of losing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from calendence.events import EVENTS_STREAM, EVENTS_SUBJECT_PREFIX
from calendence.logs import log_fields
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError

log = logging.getLogger("notify_service.consumer")

DURABLE_NAME = "notify-service"
Handler = Callable[[dict[str, Any]], Awaitable[None]]


async def ensure_consumer(js: JetStreamContext) -> None:
    """Create the durable pull consumer if missing; every replica shares it."""
    await js.add_consumer(
        EVENTS_STREAM,
        ConsumerConfig(
            durable_name=DURABLE_NAME,
            filter_subject=f"{EVENTS_SUBJECT_PREFIX}.>",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=30,
            max_ack_pending=1000,
        ),
    )


async def consume_events(js: JetStreamContext, handle: Handler, batch: int = 50) -> None:
    subscription = await js.pull_subscribe_bind(DURABLE_NAME, stream=EVENTS_STREAM)
    while True:
        try:
            messages = await subscription.fetch(batch, timeout=1)
        except FetchTimeoutError:
            continue
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("fetch failed, retrying", extra=log_fields(error=repr(error)))
            await asyncio.sleep(0.5)
            continue
        for message in messages:
            try:
                await handle(orjson.loads(message.data))
            except Exception:
                log.exception("event handling failed; JetStream will redeliver")
                await message.nak(delay=1)
                continue
            await message.ack()
