"""NATS names shared by publishers and consumers, and the JetStream stream setup."""

from __future__ import annotations

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

# Domain events (the outbox relay publishes, notify-service consumes durably).
EVENTS_STREAM = "CALENDENCE_EVENTS"
EVENTS_SUBJECT_PREFIX = "calendence.events"
# JetStream de-duplicates on Nats-Msg-Id inside this window; the relay's retries after
# a crash land well inside it.
DUPLICATE_WINDOW_SECONDS = 24 * 3600

# Core NATS broadcasts: lost ones only cost a cache its freshness until its TTL.
KEY_REVOKED_SUBJECT = "calendence.keys.revoked"
CATALOGUE_CHANGED_SUBJECT = "calendence.catalogue.changed"


def event_subject(event_type: str) -> str:
    """`booking.cancelled` -> `calendence.events.booking.cancelled`."""
    return f"{EVENTS_SUBJECT_PREFIX}.{event_type}"


async def connect(url: str, name: str) -> NatsClient:
    return await nats.connect(
        url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=2
    )


async def ensure_events_stream(js: JetStreamContext) -> None:
    """Create or update the events stream; safe to run from every replica at start."""
    config = StreamConfig(
        name=EVENTS_STREAM,
        subjects=[f"{EVENTS_SUBJECT_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=7 * 24 * 3600,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)
