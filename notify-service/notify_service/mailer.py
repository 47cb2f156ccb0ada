"""Client emails: queued from booking events, sent through SMTP with retries.

Queuing happens with the event's receipt (one message per event, however often
JetStream delivers it); sending happens apart from bookings and webhooks, so a slow,
refusing or absent mail server never holds up either. A replica with room sends the
messages it queues at once, stored already leased to it (no claim needed); the rest,
and every retry, are claimed by a loop every replica runs. Webhooks go first: events
that make webhook deliveries have their emails claimed later, and while webhook
attempts are being made, only emails queued a while ago
(`MAIL_WAIT_FOR_WEBHOOKS_SECONDS`) are sent, so that composing and sending a burst of
emails never delays the webhooks of the same events; once the webhooks are out, or the
emails have waited that long, they go. A temporary failure (no connection,
a 4xx answer) is retried on the webhook schedule (5 s, 20 s, 80 s, ... for about a
day); a 5xx answer (the server refuses the recipient: a bounce) fails the message at
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import aiosmtplib
from aiosmtplib.email import extract_recipients, extract_sender
from calendence.cancellation import stop_if_cancelled
from calendence.logs import access_log, log_fields
from calendence.timefmt import to_iso

from notify_service import mail
from notify_service.delivery_repository import MessageLease, StoredEvents
from notify_service.leased_work import finish_or_give_back
from notify_service.message_repository import (
    MessageAttempt,
    MessageClaim,
    MessageRepository,
    NewMessage,
)
from notify_service.schedule import retry_in

log = logging.getLogger("notify_service.mailer")

# Stores a batch of events with their messages, the first few leased (`record_events`).
RecordEvents = Callable[
    [list[tuple[dict[str, Any], int]], list[NewMessage], MessageLease | None],
    Awaitable[StoredEvents],
]

_MAX_ERROR_CHARS = 500
# Longest a send's result waits to be recorded with others' (see `_finish_and_claim`).
_RECORD_WITHIN_SECONDS = 0.05


@dataclass(frozen=True)
class SmtpServer:
    """Where mail goes: `smtp://[user:password@]host[:port]` (STARTTLS when the server
    offers it) or `smtps://...` (TLS from the first byte)."""

    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:password@host:587")
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=tls,
        )


class Permanent(Exception):
    """The server refused the message for good: retrying cannot help."""


class SmtpConnections:
    """Connections to the mail server kept open between emails: a new one costs a TCP
    (and TLS) handshake, EHLO and login per email. One sends one email at a time; one
    that failed is closed, never reused."""

    def __init__(self, server: SmtpServer, timeout: float, keep: int) -> None:
        self.server = server
        self.timeout = timeout
        self.keep = keep
        self._idle: list[aiosmtplib.SMTP] = []

    async def send(self, message: Message) -> None:
        while self._idle:
            client = self._idle.pop()
            if not client.is_connected:
                continue
            try:
                await _send_on(client, message)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                # The server closed a kept connection meanwhile: once more on a new one.
                client.close()
                break
            except BaseException:
                client.close()
                raise
            self._keep(client)
            return
        client = aiosmtplib.SMTP(
            hostname=self.server.host,
            port=self.server.port,
            username=self.server.username,
            password=self.server.password,
            use_tls=self.server.implicit_tls,
            timeout=self.timeout,
        )
        try:
            await client.connect()
            await _send_on(client, message)
        except BaseException:
            client.close()
            raise
        self._keep(client)

    def _keep(self, client: aiosmtplib.SMTP) -> None:
        if len(self._idle) < self.keep:
            self._idle.append(client)
        else:
            client.close()

    async def close(self) -> None:
        while self._idle:
            client = self._idle.pop()
            with contextlib.suppress(Exception):
                await client.quit()


async def _send_on(client: aiosmtplib.SMTP, message: Message) -> None:
    sender, recipients = extract_sender(message), extract_recipients(message)
    try:
        if sender is not None and recipients and (sender + "".join(recipients)).isascii():
            # Our messages are 7-bit (quoted-printable, base64, RFC 2047 headers): sent
            # as flattened by `mail.flatten`, at half the CPU of send_message's own.
            await client.sendmail(sender, recipients, mail.flatten(message))
        else:  # an address that needs SMTPUTF8: aiosmtplib's checks and options
            await client.send_message(message)
    except aiosmtplib.SMTPRecipientsRefused as refused:
        codes = [r.code for r in refused.recipients]
        if all(code >= 500 for code in codes):
            raise Permanent(str(refused)) from None
        raise
    except aiosmtplib.SMTPResponseException as answer:
        if answer.code >= 500:
            raise Permanent(f"{answer.code} {answer.message}") from None
        raise


def messages_for(event: dict[str, Any]) -> list[NewMessage]:
    """The client email an event calls for, if any."""
    kind = mail.email_kind(event)
    if kind is None:
        return []
    booking = event["data"]
    return [
        NewMessage(
            event_id=UUID(event["id"]),
            business_id=UUID(event["business_id"]),
            booking_id=UUID(booking["id"]),
            kind=kind,
            recipient=booking["client"]["email"],
            subject=mail.subject_of(kind, event),
        )
    ]


def messages_wanted(events: list[dict[str, Any]]) -> list[NewMessage]:
    """The client emails these events call for, to be queued with their receipts."""
    wanted: list[NewMessage] = []
    for event in events:
        try:
            wanted += messages_for(event)
        except (KeyError, TypeError, ValueError) as error:
            # A booking document without what a mail needs: webhooks still go out.
            log.error(
                "no client email for a malformed booking event",
                extra=log_fields(event_id=event["id"], error=repr(error)),
            )
    return wanted


def render_message(row: dict[str, Any]) -> dict[str, Any]:
    """A message as GET /api/v1/bookings/{id}/messages shows it."""
    return {
        "object": "message",
        "id": str(row["id"]),
        "booking_id": str(row["booking_id"]),
        "event_id": str(row["event_id"]),
        "kind": row["kind"],
        "channel": row["channel"],
        "to": row["recipient"],
        "subject": row["subject"],
        "status": row["status"],
        "attempts": [
            {
                "attempt": a["attempt"],
                "attempted_at": to_iso(datetime.fromisoformat(a["attempted_at"])),
                "error": a["error"],
            }
            for a in row["attempts"]
        ],
        "created_at": to_iso(row["created_at"]),
        "sent_at": to_iso(row["sent_at"]) if row["sent_at"] else None,
    }


class Mailer:
    def __init__(
        self,
        repository: MessageRepository,
        server: SmtpServer,
        sender: str,
        *,
        timeout_seconds: float,
        poll_seconds: float,
        max_in_flight: int = 10,
        webhooks_busy: Callable[[], bool] = lambda: False,
        wait_for_webhooks: timedelta = timedelta(0),
    ) -> None:
        self.repository = repository
        self.server = server
        self.connections = SmtpConnections(server, timeout_seconds, max_in_flight)
        self.sender = sender
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self.max_in_flight = max_in_flight
        self.webhooks_busy = webhooks_busy
        self.wait_for_webhooks = wait_for_webhooks
        # Composing an email takes milliseconds of CPU: one at a time, each in its own
        # turn of the event loop, so that a webhook never waits for a whole batch.
        self._composing = asyncio.Lock()
        # A send not reported within this is taken over by another claim.
        self.lease = timedelta(seconds=timeout_seconds * 3 + 20)
        self._wake = asyncio.Event()
        self._running: dict[asyncio.Task[None], MessageClaim] = {}
        # Attempts that ended, recorded by the loop's next call (which also claims).
        self._ended: list[MessageAttempt] = []
        self._first_ended_at = 0.0
        self._stopping = False
        # Slots promised to messages being stored leased to this replica.
        self._reserved = 0

    def wake(self) -> None:
        self._wake.set()

    async def store_and_send(
        self,
        record: RecordEvents,
        batch: list[tuple[dict[str, Any], int]],
        messages: list[NewMessage],
    ) -> StoredEvents:
        """Store events with the client messages they call for (`record`:
        `DeliveryRepository.record_events`), and send at once those this replica has
        room for: stored leased to it, they skip the claim, a statement and its round
        trip each. None while webhook attempts are being made or the events make
        some (those emails wait for the webhooks, as any do), or while stopping; the
        rest wait for the claims."""
        reserved = 0
        if not self._stopping and not self.webhooks_busy():
            reserved = max(0, min(len(messages), self._room()))
        # Counted as taken while the store is under way, so that no claim fills them.
        self._reserved += reserved
        lease = MessageLease(uuid.uuid4(), reserved, self.lease) if reserved else None
        try:
            stored = await record(batch, messages, lease)
        finally:
            self._reserved -= reserved
        if lease is not None:
            events = {UUID(event["id"]): event for event, _ in batch}
            for message, message_id in stored.leased:
                claim = MessageClaim(
                    message_id, 1, lease.token, message.kind, events[message.event_id]
                )
                self._start(claim)
        if len(stored.leased) < len(messages):  # the rest are the claims'
            self.wake()
        return stored

    def _room(self) -> int:
        """Sends this replica may start: those running and those promised count."""
        return self.max_in_flight - len(self._running) - self._reserved

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self._finish_and_claim()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                stop_if_cancelled(error)
                log.warning("claiming messages failed", extra=log_fields(error=repr(error)))
            with contextlib.suppress(TimeoutError):
                # Results waiting to be recorded are looked at again within a moment.
                wait = _RECORD_WITHIN_SECONDS if self._ended else self.poll_seconds
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _finish_and_claim(self) -> None:
        """Record the attempts that ended and claim what there is room for, in one
        round trip (none when there is neither)."""
        room = 0 if self._stopping else self._room()
        waited = asyncio.get_running_loop().time() - self._first_ended_at
        if (
            not self._stopping
            and room < self.max_in_flight // 2
            and (not self._ended or waited < _RECORD_WITHIN_SECONDS)
        ):
            # Sends are under way and most slots are taken: record and claim once half
            # of them are free (or a result has waited a moment), not once per email (a
            # statement and its round trip each). A lone email still goes at once.
            return
        ended, self._ended = self._ended, []
        if room <= 0 and not ended:
            return
        fresh_wait = self.wait_for_webhooks if self.webhooks_busy() else None
        try:
            claims = await self.repository.finish_and_claim(
                ended, max(room, 0), self.lease, fresh_wait
            )
        except BaseException:
            # Recorded by the next call; should this replica stop first, the leases
            # run out and the messages are sent again.
            self._ended[:0] = ended
            raise
        for claim in claims:
            self._start(claim)

    def _start(self, claim: MessageClaim) -> None:
        task = asyncio.create_task(self._send(claim))
        self._running[task] = claim
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("sending a message failed", exc_info=task.exception())
        self._wake.set()

    async def _send(self, claim: MessageClaim) -> None:
        attempted_at = datetime.now(UTC)
        error: str | None = None
        wait: timedelta | None = None
        try:
            async with self._composing:
                message = mail.compose(claim.kind, claim.event, claim.message_id, self.sender)
            await self.connections.send(message)
        except Permanent as refused:
            error = f"refused: {refused}"[:_MAX_ERROR_CHARS]
        except Exception as failure:  # an outage or a 4xx: try again later
            error = (repr(failure) if not str(failure) else str(failure))[:_MAX_ERROR_CHARS]
            wait = retry_in(claim.attempt)
        # Failures, slow sends and a sample: not a line per email at INFO.
        elapsed = (datetime.now(UTC) - attempted_at).total_seconds()
        if access_log.wanted(elapsed, error is not None):
            log.info(
                "client email attempt",
                extra=log_fields(
                    message_id=str(claim.message_id),
                    kind=claim.kind,
                    attempt=claim.attempt,
                    error=error,
                ),
            )
        if not self._ended:
            self._first_ended_at = asyncio.get_running_loop().time()
        self._ended.append(MessageAttempt(claim, attempted_at, error, wait))

    async def stop(self, grace_seconds: float) -> None:
        """Stop claiming; let sends finish within the grace, give the rest back."""
        self._stopping = True
        self._wake.set()
        await finish_or_give_back(self._running, grace_seconds, self.repository.release)
        if self._ended:
            # What ended within the grace: recorded now, not sent again.
            try:
                await self._finish_and_claim()
            except Exception as error:
                log.warning("recording attempts failed", extra=log_fields(error=repr(error)))
        await self.connections.close()
