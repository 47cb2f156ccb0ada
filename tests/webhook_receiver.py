"""A real HTTP receiver for webhooks in the test process, and helpers around it.

Each path answers as told (status, delay) and keeps every request it got, so a test can
make an endpoint fail, hang or recover and see exactly what arrived and when.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiohttp import web
from calendence.devstack.processes import free_port
from calendence.devstack.stack import LocalStack
from standardwebhooks import Webhook

from tests.api import Tenant, created

ALLOW_PRIVATE = "WEBHOOKS_ALLOW_PRIVATE_TARGETS"
ENDPOINTS = "/api/v1/webhook-endpoints"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = orjson.loads(self.body)
        return document

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> dict[str, Any]:
        """What a receiver does: raises unless signed with `secret`."""
        document: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return document


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0


@dataclass
class WebhookReceiver:
    """`async with WebhookReceiver() as receiver:`; `receiver.url("/a")` is an endpoint."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)
    in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight: Counter[str] = field(default_factory=Counter)

    async def __aenter__(self) -> WebhookReceiver:
        self._released = asyncio.Event()
        self._arrived = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self._released.set()  # no handler keeps the server from stopping
        await self._runner.cleanup()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, status: int = 200, delay: float = 0.0) -> None:
        self.answers[path] = Answer(status, delay)

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        body = await request.read()
        self.received.append(Received(path, dict(request.headers), body, time.monotonic()))
        self._arrived.set()
        answer = self.answers.get(path, Answer())
        self.in_flight[path] += 1
        self.most_in_flight[path] = max(self.most_in_flight[path], self.in_flight[path])
        try:
            if answer.delay:
                try:
                    await asyncio.wait_for(self._released.wait(), answer.delay)
                except TimeoutError:
                    pass
            return web.Response(status=answer.status)
        finally:
            self.in_flight[path] -= 1

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(
        self, matches: Callable[[Received], bool], timeout: float = 10.0, count: int = 1
    ) -> list[Received]:
        """The first `count` requests that match, waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.received if matches(r)]
            if len(found) >= count:
                return found[:count]
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [(r.path, r.json.get("type")) for r in self.received]
                raise AssertionError(f"{count} matching webhooks not seen in {timeout}s: {seen}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.2))
            except TimeoutError:
                pass


def of_booking(booking_id: str, event_type: str | None = None) -> Callable[[Received], bool]:
    def matches(received: Received) -> bool:
        document = received.json
        return document["data"].get("id") == booking_id and (
            event_type is None or document["type"] == event_type
        )

    return matches


async def create_endpoint(tenant: Tenant, url: str, **fields: Any) -> dict[str, Any]:
    answer = await tenant.api.post(ENDPOINTS, tenant.business_key, {"url": url, **fields})
    endpoint: dict[str, Any] = created(answer)
    return endpoint


async def deliveries(tenant: Tenant, endpoint_id: str) -> list[dict[str, Any]]:
    answer = await tenant.api.get(f"{ENDPOINTS}/{endpoint_id}/deliveries", tenant.business_key)
    assert answer.status == 200, answer.body
    found: list[dict[str, Any]] = answer.body["data"]
    return found


@asynccontextmanager
async def notify_db(stack: LocalStack) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(stack.env["NOTIFY_DATABASE_URL"])
    try:
        yield connection
    finally:
        await connection.close()


async def retry_now(stack: LocalStack, endpoint_id: str) -> None:
    """Make the endpoint's pending retries due now instead of waiting out the backoff."""
    async with notify_db(stack) as db:
        await db.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() "
            "WHERE endpoint_id = $1 AND status = 'pending' "
            "AND (leased_until IS NULL OR leased_until < now())",
            endpoint_id,
        )


async def wait_for_attempts(
    tenant: Tenant, endpoint_id: str, count: int, timeout: float = 15.0
) -> list[dict[str, Any]]:
    """The endpoint's deliveries once `count` attempts in all are recorded."""
    deadline = time.monotonic() + timeout
    while True:
        found = await deliveries(tenant, endpoint_id)
        if sum(len(d["attempts"]) for d in found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} attempts after {timeout}s: {found}")
        await asyncio.sleep(0.1)


def restart_notify_service(
    stack: LocalStack, *, crash: bool = False, env: dict[str, str] | None = None
) -> None:
    """Stop notify-service (SIGKILL when `crash`) and start it again, letting webhooks
    reach this machine unless `env` says otherwise."""
    process = stack.services["notify-service"]
    if crash:
        process.kill()
    process.stop()
    stack.start_service("notify-service", {ALLOW_PRIVATE: "true", **(env or {})})
    stack.wait_until_ready()


def allow_private_targets(stack: LocalStack) -> None:
    """The test receivers listen on 127.0.0.1, which only the development setting allows."""
    if stack.env.get(ALLOW_PRIVATE) != "true":
        # As if the stack had been started with it, so later restarts keep it too.
        stack.env[ALLOW_PRIVATE] = "true"
        restart_notify_service(stack)
