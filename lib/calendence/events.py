"""NATS names shared by publishers and consumers, and the JetStream stream setup."""

from __future__ import annotations

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from calendence.settings import CommonSettings

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


def server_urls(nats_url: str) -> list[str]:
    """`nats://a:4222, nats://b:4222` -> every server of the cluster, in order."""
    urls = [url.strip() for url in nats_url.split(",") if url.strip()]
    if not urls:
        raise ValueError("NATS_URL names no server")
    return urls


async def connect(
    url: str, name: str, *, ping_interval: float = 2.0, max_outstanding_pings: int = 2
) -> NatsClient:
    """A client of every server `url` lists (comma-separated), reconnecting for ever.

    The client moves to another server when its own closes the connection, or stops
    answering pings (`ping_interval` x `max_outstanding_pings`): a frozen server keeps
    its sockets open and would otherwise hold a client for minutes.
    """
    return await nats.connect(
        servers=server_urls(url),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=2,
        ping_interval=ping_interval,
        max_outstanding_pings=max_outstanding_pings,
    )


async def connect_service(settings: CommonSettings, name: str) -> NatsClient:
    """A service's client, as its settings say."""
    return await connect(
        settings.nats_url,
        name,
        ping_interval=settings.nats_ping_interval_seconds,
        max_outstanding_pings=settings.nats_max_outstanding_pings,
    )


async def ensure_events_stream(js: JetStreamContext, replicas: int = 1) -> None:
    """Create or update the events stream; safe to run from every replica at start.

    `replicas` copies (NATS_STREAM_REPLICAS): an update raises or lowers the count of
    a stream made before.
    """
    config = StreamConfig(
        name=EVENTS_STREAM,
        subjects=[f"{EVENTS_SUBJECT_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=7 * 24 * 3600,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        num_replicas=replicas,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)
