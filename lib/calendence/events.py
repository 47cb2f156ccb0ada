"""NATS names shared by publishers and consumers, and the JetStream stream and bucket setup."""

from __future__ import annotations

from uuid import UUID

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

from calendence.settings import CommonSettings

# Domain events (the outbox relay publishes, notify-service consumes durably).
EVENTS_STREAM = "CALENDENCE_EVENTS"
EVENTS_SUBJECT_PREFIX = "calendence.events"
# JetStream de-duplicates on Nats-Msg-Id inside this window; the relay's retries after
# a crash land well inside it.
DUPLICATE_WINDOW_SECONDS = 24 * 3600

# Core NATS broadcasts: lost ones only cost a cache its freshness until its TTL.
KEY_REVOKED_SUBJECT = "calendence.keys.revoked"
# booking-service: events were committed to the outbox, for the replica relaying it.
OUTBOX_WAKE_SUBJECT = "calendence.outbox.wake"

# Each business's catalogue snapshot, keyed by business id: booking-service writes it
# after every change commits, hold-service reads and watches it (never booking-service).
CATALOGUE_BUCKET = "CALENDENCE_CATALOGUES"


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


def catalogue_key(business_id: UUID) -> str:
    return str(business_id)


async def ensure_catalogue_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    """Create the catalogue bucket, or bind to it (and set its `replicas`) if it exists;
    safe to run from every replica of both services at start.

    Only the latest snapshot of a key is kept. Reads go to the stream's leader (no
    direct gets, which any replica of a clustered bucket may answer from behind), so
    a hold placed right after a change reads that change.
    """
    config = KeyValueConfig(
        bucket=CATALOGUE_BUCKET,
        history=1,
        storage=StorageType.FILE,
        replicas=replicas,
        direct=False,
    )
    try:
        return await js.create_key_value(config)
    except BadRequestError:
        # It exists with another replica count: change only that.
        stream = (await js.stream_info(f"KV_{CATALOGUE_BUCKET}")).config
        stream.num_replicas = replicas
        await js.update_stream(stream)
        return await js.key_value(CATALOGUE_BUCKET)
