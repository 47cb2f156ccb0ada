"""Transactional outbox: events are written with the change, then relayed to JetStream.

`record_event` runs inside the caller's transaction, so an event exists exactly when
its change committed. `OutboxRelay` publishes unpublished rows in order with
`Nats-Msg-Id` = event id (JetStream drops the duplicate if a crash made us publish
twice) and marks them published. One replica relays at a time (advisory lock), which
keeps events in commit order.

Whoever commits events wakes the relay (`RelayWakeup`): its own replica's directly when
that one is relaying, else the relaying replica over NATS. Not with PostgreSQL's NOTIFY:
a transaction that notifies takes one database-wide lock at commit, so every booking's
commit would queue behind every other's (and behind its WAL flush).

A booking made in one statement writes its event there too (`event_insert`), with the
booking's row as the event's data (`data_is_row`): the relay renders the document.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from calendence.cancellation import stop_if_cancelled
from calendence.events import OUTBOX_WAKE_SUBJECT, event_subject
from calendence.logs import log_fields
from calendence.storage import mark_session_changed
from calendence.timefmt import to_iso, utcnow
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

log = logging.getLogger("booking_service.outbox")

_RELAY_LOCK_ID = 0x6F7574626F78
# How long a batch waits for JetStream's acks before it is sent again.
_ACK_TIMEOUT_SECONDS = 5.0
_BATCH = 200
_MARK = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::uuid[])"
# The batch published last is marked and the next read in one statement, which sees the
# table as it was before the mark: the marked rows are left out by id.
_MARK_AND_READ = f"""
    WITH marked AS ({_MARK})
    SELECT id, type, payload, data_is_row FROM outbox
    WHERE published_at IS NULL AND id <> ALL($1::uuid[])
    ORDER BY seq LIMIT $2
"""
# The business's name and client email choices as of the change ride along in every
# event for notify-service (webhook bodies carry only type, timestamp and data).
_BUSINESS_AS_OF_NOW = """jsonb_build_object('business', (
    SELECT jsonb_build_object('name', name, 'client_emails', client_emails)
    FROM businesses WHERE id = {business}))"""


def new_event(event_type: str, business_id: UUID) -> dict[str, Any]:
    """An event's envelope, without its data; `id` is its id (a UUID's text)."""
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "timestamp": to_iso(utcnow()),
        "business_id": str(business_id),
    }


def event_insert(
    source: str, envelope: str, business: str, data: str, order_by: str | None = None
) -> str:
    """The statement that adds an event to the outbox for each row of `source` (in the
    order of `order_by`, when it gives more than one), for a caller that writes it in its
    own statement: `envelope` (a `new_event`), `business` and `data` are SQL expressions;
    `data` is a row of `source` as JSON, which the relay renders. It returns the ids
    added; the caller must select from it (or name it), and wake the relay once the
    statement committed (`RelayWakeup`)."""
    ordered = f"ORDER BY {order_by}" if order_by else ""
    return f"""
        INSERT INTO outbox (id, type, business_id, payload, data_is_row)
        SELECT ({envelope}->>'id')::uuid, {envelope}->>'type', {business},
               {envelope} || jsonb_build_object('data', {data})
               || {_BUSINESS_AS_OF_NOW.format(business=business)}, true
        FROM {source}
        {ordered}
        RETURNING id"""


async def record_event(
    connection: asyncpg.Connection, event_type: str, business_id: UUID, data: dict[str, Any]
) -> UUID:
    """Add an event to the outbox in the caller's transaction; returns its id. Once the
    transaction committed, the caller wakes the relay (`RelayWakeup`)."""
    payload = new_event(event_type, business_id) | {"data": data}
    await connection.execute(
        f"""
        INSERT INTO outbox (id, type, business_id, payload)
        VALUES ($1, $2, $3, $4::jsonb || {_BUSINESS_AS_OF_NOW.format(business="$3")})
        """,
        payload["id"],
        event_type,
        business_id,
        payload,
    )
    return UUID(payload["id"])


class RelayWakeup:
    """Tells the relay that events were committed: this replica's own when it is the one
    relaying (one replica at a time), else the one that is, through a core NATS message
    (about 200 µs of CPU per booking between the two processes and NATS, measured, so
    not sent when this replica relays). Said after the commit, so the relay finds the
    events; a wake-up lost (a crash, NATS away, the relaying replica changing) leaves
    them to the relay's next poll. Events committed before a message goes share it."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._relay_here: OutboxRelay | None = None
        self._message_due = False
        self._sending: set[asyncio.Task[None]] = set()

    def relay_here(self, relay: OutboxRelay) -> None:
        """This replica's relay (none: `OUTBOX_RELAY_ENABLED=false`)."""
        self._relay_here = relay

    def events_committed(self) -> None:
        if self._relay_here is not None and self._relay_here.relaying:
            self._relay_here.wake()
        elif not self._message_due:
            self._message_due = True
            sending = asyncio.get_running_loop().create_task(self._send())
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)

    async def _send(self) -> None:
        # Events committed from here on wait for a message of their own.
        self._message_due = False
        try:
            await self._nc.publish(OUTBOX_WAKE_SUBJECT)
        except Exception as error:  # the relay's poll finds the events
            log.debug("relay wake-up not sent", extra=log_fields(error=repr(error)))


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        nc: NatsClient,
        poll_seconds: float,
        render_row: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        """`render_row`: an event's data stored as the booking's row -> its document."""
        self.pool = pool
        self.nc = nc
        self.js = nc.jetstream()
        self.poll_seconds = poll_seconds
        self.render_row = render_row
        self._wake = asyncio.Event()
        # Holding the advisory lock: this replica is the one relaying.
        self.relaying = False

    def wake(self) -> None:
        """Events were committed: look for them now, not at the next poll."""
        self._wake.set()

    def _payload(self, row: asyncpg.Record) -> dict[str, Any]:
        payload: dict[str, Any] = row["payload"]
        if row["data_is_row"]:
            payload["data"] = self.render_row(payload["data"])
        return payload

    async def publish(self, rows: list[asyncpg.Record]) -> list[UUID]:
        """Publish a batch of outbox rows; returns the ids JetStream acked.

        The batch is sent in order without waiting between messages (JetStream stores
        them in the order it receives them on this connection) and then every ack is
        awaited: one round trip to NATS per batch, not per event. Only the acked prefix
        counts; anything after a failure is sent again later, and JetStream drops what
        it already has (same Nats-Msg-Id)."""
        acks = [
            await self.js.publish_async(
                event_subject(row["type"]),
                orjson.dumps(self._payload(row)),
                headers={"Nats-Msg-Id": str(row["id"])},
            )
            for row in rows
        ]
        outcomes = await asyncio.wait_for(
            asyncio.gather(*acks, return_exceptions=True), _ACK_TIMEOUT_SECONDS
        )
        acked = list(
            itertools.takewhile(lambda outcome: not isinstance(outcome, BaseException), outcomes)
        )
        if len(acked) < len(rows):
            log.warning(
                "JetStream refused an event", extra=log_fields(error=repr(outcomes[len(acked)]))
            )
        return [row["id"] for row in rows[: len(acked)]]

    async def run(self) -> None:
        """Relay forever; only the replica holding the advisory lock publishes."""
        while True:
            try:
                async with self.pool.acquire() as connection:
                    await self._relay_while_leader(connection)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                stop_if_cancelled(error)
                log.warning("outbox relay failed, retrying", extra=log_fields(error=repr(error)))
            await asyncio.sleep(self.poll_seconds)

    async def _relay_while_leader(self, connection: asyncpg.Connection) -> None:
        # A session-level lock: the pool resets this connection in full.
        mark_session_changed(connection)
        if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK_ID):
            return

        async def woken(_: Msg) -> None:
            self._wake.set()

        # Other replicas' wake-ups, heard while this one relays.
        wakeups = await self.nc.subscribe(OUTBOX_WAKE_SUBJECT, cb=woken)
        self.relaying = True
        try:
            published: list[UUID] = []
            while True:
                self._wake.clear()
                # One round trip: the last batch marked published, the next one read.
                rows = await connection.fetch(_MARK_AND_READ, published, _BATCH)
                if not rows:
                    published = []
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                    except TimeoutError:
                        pass
                    continue
                published = await self.publish(rows)
                if len(published) < len(rows):
                    # The rest is sent again after the poll interval.
                    await connection.execute(_MARK, published)
                    published = []
                    await asyncio.sleep(self.poll_seconds)
        finally:
            self.relaying = False
            # NATS gone meanwhile took the subscription with it.
            with contextlib.suppress(Exception):
                await wakeups.unsubscribe()
            await connection.execute("SELECT pg_advisory_unlock($1)", _RELAY_LOCK_ID)
