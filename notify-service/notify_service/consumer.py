"""The durable JetStream consumer: take each event, record it, then ack.

Acking only after the work is stored means a crash redelivers instead of losing (and
a redelivered event is recognised). `on_stored` hears the stream positions of each
batch as soon as it is stored, before the acks: what it stored may go out at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from calendence.cancellation import stop_if_cancelled
from calendence.events import EVENTS_STREAM, EVENTS_SUBJECT_PREFIX
from calendence.ids import is_uuid
from calendence.logs import log_fields
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

log = logging.getLogger("notify_service.consumer")

DURABLE_NAME = "notify-service"
# Stores a batch of events, each with its position in the stream (the order events
# happened in), all or nothing.
Handler = Callable[[list[tuple[dict[str, Any], int]]], Awaitable[None]]
# While events keep coming, how long a fetch waits for one more before the consumer
# goes back to waiting for the next event alone.
_BUSY_WAIT_SECONDS = 0.005
_REQUIRED = {"id": str, "type": str, "timestamp": str, "business_id": str, "data": dict}


class MalformedEvent(ValueError):
    pass


def parse_event(raw: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise MalformedEvent(f"not JSON: {error}") from None
    if not isinstance(event, dict):
        raise MalformedEvent("not a JSON object")
    for name, kind in _REQUIRED.items():
        if not isinstance(event.get(name), kind):
            raise MalformedEvent(f"{name} is missing or not a {kind.__name__}")
    if not (is_uuid(event["id"]) and is_uuid(event["business_id"])):
        raise MalformedEvent("id and business_id must be UUIDs")
    return event


async def stream_watermark(js: JetStreamContext) -> int:
    """The highest stream position every earlier event of which is stored: one past
    the durable consumer's ack floor."""
    info = await js.consumer_info(EVENTS_STREAM, DURABLE_NAME, timeout=2)
    return (info.ack_floor.stream_seq if info.ack_floor else 0) + 1


async def ensure_consumer(
    js: JetStreamContext, replicas: int = 1, ack_wait_seconds: float = 30.0
) -> None:
    """Create the durable pull consumer, or update it (its replica count); every
    replica of the service shares it."""
    await js.add_consumer(
        EVENTS_STREAM,
        ConsumerConfig(
            durable_name=DURABLE_NAME,
            filter_subject=f"{EVENTS_SUBJECT_PREFIX}.>",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait_seconds,
            max_ack_pending=1000,
            num_replicas=replicas,
        ),
    )


async def consume_events(
    js: JetStreamContext,
    handle: Handler,
    on_stored: Callable[[list[int]], None] = lambda positions: None,
    batch: int = 50,
) -> None:
    subscription = await js.pull_subscribe_bind(DURABLE_NAME, stream=EVENTS_STREAM)
    idle = True
    try:
        while True:
            try:
                # nats-py's fetch of a batch, once its first event arrives on a waiting
                # request, waits out the timeout for the rest. So: wait for one event
                # when idle (answered the moment it is published), and while busy take
                # a batch of what is there already, waiting at most a few milliseconds.
                if idle:
                    messages = await subscription.fetch(1, timeout=1)
                else:
                    messages = await subscription.fetch(batch, timeout=_BUSY_WAIT_SECONDS)
            except TimeoutError as error:  # nothing to fetch (nats' timeouts included)
                stop_if_cancelled(error)
                idle = True
                continue
            except asyncio.CancelledError:
                raise
            except Exception as error:
                stop_if_cancelled(error)
                log.warning("fetch failed, retrying", extra=log_fields(error=repr(error)))
                await asyncio.sleep(0.5)
                continue
            idle = False
            await _store_and_ack(messages, handle, on_stored)
    finally:
        # Whatever it still holds is not ours any more (JetStream redelivers what was
        # not acked); left subscribed, it would keep the connection's drain waiting.
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


async def _store_and_ack(
    messages: list[Msg], handle: Handler, on_stored: Callable[[list[int]], None]
) -> None:
    """Store a fetched batch in one go, then ack it. Should the batch fail, each event
    is tried alone, so one bad event holds back only itself."""
    parsed: list[tuple[Msg, dict[str, Any]]] = []
    dropped: list[int] = []
    for message in messages:
        try:
            parsed.append((message, parse_event(message.data)))
        except MalformedEvent as error:
            # Redelivering it would never help; it would only hold the ack floor back.
            log.error("malformed event dropped", extra=log_fields(error=str(error)))
            await message.term()
            dropped.append(message.metadata.sequence.stream)
    if not parsed:
        on_stored(dropped)
        return
    stored = [message for message, _ in parsed]
    try:
        await handle([(event, message.metadata.sequence.stream) for message, event in parsed])
    except asyncio.CancelledError:
        # Stopping with the batch not stored (or not known to be): JetStream sends it
        # again at once, to another replica or to this one restarted, instead of after
        # the ack wait. One stored after all is recognised when it comes back.
        await _give_back(stored)
        raise
    except Exception:
        log.exception("storing a batch of events failed; trying them one by one")
        stored = []
        for message, event in parsed:
            try:
                await handle([(event, message.metadata.sequence.stream)])
                stored.append(message)
            except Exception:
                log.exception("event handling failed; JetStream will redeliver")
                await message.nak(delay=1)
    # Dropped ones count as handled: nothing will ever be stored at their positions.
    on_stored(dropped + [message.metadata.sequence.stream for message in stored])
    # Not waited for: the server handles a connection's messages in order, so the next
    # fetch's request reaches it after these acks, and waiting for an answer here would
    # hold that fetch back by a round trip.
    try:
        for message in stored:
            await message.ack()
    except Exception as error:  # stored already: a redelivery is recognised
        log.warning("ack failed", extra=log_fields(error=repr(error)))


async def _give_back(messages: list[Msg]) -> None:
    for message in messages:
        try:
            await message.nak()
        except Exception as error:  # redelivered after the ack wait instead
            log.warning("nak failed", extra=log_fields(error=repr(error)))
            return
