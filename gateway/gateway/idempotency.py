"""Idempotency-Key on POSTs: a retry with the same key and body replays the first answer.

Answers are kept in Redis for 24 hours under the business's scope, shared by every
gateway replica. The same key with another body is 422; while the first request is
still running a retry gets 409. Answers of 5xx are not kept, so a retry can succeed.

A running request's claim lapses after CLAIM_SECONDS by itself: should its gateway die,
or Redis fail to take the claim back (a node frozen or failing over), a retry is
refused for that long at most, not for a day. What a booking made is also recorded
with its key in PostgreSQL, so a retry after the claim lapsed never books twice.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

import orjson
from aiohttp import web
from calendence.errors import Conflict, DomainError, InvalidInput
from calendence.storage import RedisClient

from gateway.auth import principal_of
from gateway.delivery import forget_with_the_undone
from gateway.middleware import Handler
from gateway.problems import problem_from_error

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Longer than any request runs: its body's wait and a few RPCs under their deadlines.
CLAIM_SECONDS = 30
# Printable ASCII, no space at either end (HTTP would strip it): the document says the same.
KEY_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"
KEY_SHAPE = re.compile(KEY_PATTERN)


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: bytes
    content_type: str


class IdempotencyRepository:
    def __init__(self, redis: RedisClient, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def _key(scope: str, key: str) -> str:
        return f"cal:idem:{scope}:{key}"

    async def begin(self, scope: str, key: str, fingerprint: str) -> StoredAnswer | None:
        """None: go ahead (the key is now ours). Otherwise the answer to replay."""
        name = self._key(scope, key)
        claim = orjson.dumps({"fingerprint": fingerprint})
        if await self.redis.set(name, claim, nx=True, ex=min(CLAIM_SECONDS, self.ttl_seconds)):
            return None
        raw = await self.redis.get(name)
        if raw is None:  # expired between the two calls: take it now
            return await self.begin(scope, key, fingerprint)
        stored = orjson.loads(raw)
        if stored["fingerprint"] != fingerprint:
            raise InvalidInput(
                "this Idempotency-Key was used with another request",
                fields={HEADER: "already used with a different body or path"},
            )
        if "status" not in stored:
            raise Conflict("a request with this Idempotency-Key is still being processed")
        return StoredAnswer(stored["status"], stored["body"].encode(), stored["content_type"])

    async def finish(self, scope: str, key: str, fingerprint: str, answer: StoredAnswer) -> None:
        document = {
            "fingerprint": fingerprint,
            "status": answer.status,
            "body": answer.body.decode(),
            "content_type": answer.content_type,
        }
        await self.redis.set(self._key(scope, key), orjson.dumps(document), ex=self.ttl_seconds)

    async def abandon(self, scope: str, key: str) -> None:
        await self.redis.delete(self._key(scope, key))


IDEMPOTENCY = web.AppKey("idempotency", IdempotencyRepository)


def idempotent(handler: Handler) -> Handler:
    """Make a POST handler replay its first answer for a repeated Idempotency-Key."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        key = request.headers.get(HEADER)
        if key is None:
            return await handler(request)
        if len(key) > MAX_KEY_LENGTH or not KEY_SHAPE.fullmatch(key):
            raise InvalidInput(
                "bad Idempotency-Key",
                fields={HEADER: f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"},
            )
        principal = principal_of(request)
        scope = principal.business_id or f"hub-{principal.hub_id}"
        body = await request.read()
        fingerprint = hashlib.sha256(
            request.method.encode() + b" " + request.path.encode() + b"\n" + body
        ).hexdigest()
        store = request.app[IDEMPOTENCY]
        replay = await store.begin(scope, key, fingerprint)
        if replay is not None:
            return web.Response(
                status=replay.status,
                body=replay.body,
                content_type=replay.content_type,
                headers={REPLAYED_HEADER: "true"},
            )
        try:
            response = await handler(request)
        except DomainError as error:
            response = problem_from_error(error)
        except BaseException:
            await store.abandon(scope, key)
            raise
        if response.status >= 500 or not isinstance(response, web.Response):
            await store.abandon(scope, key)
            return response
        # Work undone because its answer never arrived (a failure to record it included)
        # leaves no answer to replay and no claim that blocks a retry.
        forget_with_the_undone(request, functools.partial(store.abandon, scope, key))
        await store.finish(
            scope,
            key,
            fingerprint,
            StoredAnswer(
                response.status,
                response.body if isinstance(response.body, bytes) else b"",
                response.content_type,
            ),
        )
        return response

    wrapper.idempotent = True  # type: ignore[attr-defined]
    return wrapper


def idempotency_key_bytes(request: web.Request) -> bytes:
    """The request's Idempotency-Key as sent (empty if none), for a service that
    records it durably with what the request made (booking-service does)."""
    return request.headers.get(HEADER, "").encode("utf-8", "surrogateescape")


def is_idempotent(handler: Handler) -> bool:
    """Whether `handler` replays answers for a repeated Idempotency-Key."""
    return bool(getattr(handler, "idempotent", False))
