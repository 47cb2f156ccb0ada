"""Who is calling: bearer tokens resolved by booking-service, cached briefly here.

A verified key is cached for `auth_cache_seconds` so a hot key costs no round trip; a
key in use is asked about again in the background before that time is up (at a point
spread over the last third of it), so its requests never wait for the check.
Revocations arrive on NATS and evict the key at once, on every gateway replica.
"""

from __future__ import annotations

import asyncio
import random
import time

from aiohttp import web
from calendence import rpc
from calendence.auth.v1 import auth_pb2, auth_pb2_grpc
from calendence.errors import DomainError, Forbidden, InvalidInput, NotFound, Unauthenticated
from calendence.ids import parse_uuid
from calendence.principals import KeyKind, Principal, principal_from_message
from calendence.timefmt import utcnow

BUSINESS_HEADER = "Calendence-Business"
_MAX_CACHE_ENTRIES = 100_000

# Who is calling: set by the authenticating middleware for every handler after it.
PRINCIPAL = web.RequestKey("principal", Principal)


class Authenticator:
    def __init__(
        self, stub: auth_pb2_grpc.AuthServiceStub, cache_seconds: float, rpc_timeout: float
    ) -> None:
        self.stub = stub
        self.cache_seconds = cache_seconds
        self.rpc_timeout = rpc_timeout
        # (token, business id) -> (when to ask again in the background, when it is
        # stale and must be asked before use, the principal).
        self._cache: dict[tuple[str, str], tuple[float, float, Principal]] = {}
        self._refreshing: set[tuple[str, str]] = set()
        self._refreshes: set[asyncio.Task[None]] = set()
        # Counts revocations heard; see `authenticate`.
        self._revocations = 0
        # The state of the NATS link revocations arrive on; see `follow_revocation_link`.
        self._link_up = True
        self._reconnects = 0

    def follow_revocation_link(self, connected: bool, reconnects: int) -> None:
        """Trust the cache only while the link that carries revocations is up.

        While NATS is unreachable a revocation would go unheard, so nothing is served
        from the cache or added to it; after a reconnection whatever was cached before
        the gap may have been revoked during it, so it is dropped.
        """
        if not connected or reconnects != self._reconnects:
            self._cache.clear()
            self._reconnects = reconnects
        self._link_up = connected

    async def authenticate(self, token: str, business_id: str) -> Principal:
        cache_key = (token, business_id)
        cached = self._cache.get(cache_key)
        now = time.monotonic()
        if cached is not None:
            refresh_at, stale_at, principal = cached
            if stale_at > now and (principal.expires_at is None or principal.expires_at > utcnow()):
                if refresh_at <= now and cache_key not in self._refreshing:
                    self._refresh_in_background(cache_key)
                return principal
            # Stale or expired: ask again (an expired key gets its 401 from booking-service).
            self._cache.pop(cache_key, None)
        if business_id:
            parse_uuid(
                business_id,
                BUSINESS_HEADER,
                detail=f"the {BUSINESS_HEADER} header is not a business id",
            )
        return await self._ask(cache_key)

    async def _ask(self, cache_key: tuple[str, str]) -> Principal:
        """booking-service's answer for the key, cached unless a revocation may have
        crossed it."""
        token, business_id = cache_key
        revocations_before = self._revocations
        asked_at = time.monotonic()
        answer = await rpc.unary(
            self.stub.Authenticate,
            auth_pb2.AuthenticateRequest(token=token, business_id=business_id),
            timeout=self.rpc_timeout,
        )
        principal = principal_from_message(answer)
        if self._revocations != revocations_before or not self._link_up:
            # A revocation arrived while this answer was on its way (it may be for this
            # very key, answered valid just before), or one could not arrive at all:
            # caching it would outlive the eviction.
            return principal
        if len(self._cache) >= _MAX_CACHE_ENTRIES:
            self._cache.clear()
        # Asked again in the background somewhere in the last third of its time (spread,
        # so keys cached together are not all asked again at once), while still served.
        refresh_in = self.cache_seconds * random.uniform(2 / 3, 0.9)
        self._cache[cache_key] = (
            asked_at + refresh_in,
            asked_at + self.cache_seconds,
            principal,
        )
        return principal

    def _refresh_in_background(self, cache_key: tuple[str, str]) -> None:
        self._refreshing.add(cache_key)
        task = asyncio.get_running_loop().create_task(self._refresh(cache_key))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _refresh(self, cache_key: tuple[str, str]) -> None:
        try:
            await self._ask(cache_key)
        except (Unauthenticated, Forbidden, NotFound, InvalidInput):
            self._cache.pop(cache_key, None)  # no longer valid: the next request hears why
        except DomainError:
            pass  # booking-service busy: the entry serves until it is stale, then asks
        finally:
            self._refreshing.discard(cache_key)

    def forget_business(self, business_id: str) -> None:
        """Drop the cached keys of a business whose settings changed."""
        for cache_key in [k for k, (*_, p) in self._cache.items() if p.business_id == business_id]:
            self._cache.pop(cache_key, None)

    def revoke(self, key_id: str) -> None:
        self._revocations += 1
        for cache_key in [k for k, (*_, p) in self._cache.items() if p.key_id == key_id]:
            self._cache.pop(cache_key, None)


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthenticated("send your API key as 'Authorization: Bearer <key>'")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <key>'")
    if not (token.isascii() and token.isprintable()):
        # Keys are printable ASCII; other bytes (which could not even be sent on) name none.
        raise Unauthenticated("the API key is malformed")
    return token


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def require_kind(request: web.Request, *allowed: KeyKind) -> Principal:
    principal = principal_of(request)
    if principal.kind not in allowed:
        names = " or ".join(f"a {k.value} key" for k in allowed)
        raise Forbidden(f"this needs {names}; a {principal.kind.value} token may not do it")
    return principal


def business_of(request: web.Request, *allowed: KeyKind) -> str:
    """The business this request acts for, after checking the key kind may act at all."""
    principal = require_kind(request, *allowed)
    if not principal.business_id:
        raise InvalidInput(
            f"a hub key must name the business in the {BUSINESS_HEADER} header",
            fields={BUSINESS_HEADER: "required with a hub key"},
        )
    return principal.business_id


ALL_KINDS = (KeyKind.HUB, KeyKind.BUSINESS, KeyKind.SESSION)
MANAGING_KINDS = (KeyKind.HUB, KeyKind.BUSINESS)
