"""One delivery attempt: a signed POST with a deadline, never following a redirect."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

import aiohttp
from aiohttp.abc import AbstractResolver

from notify_service import targets
from notify_service.delivery_repository import AttemptResult, Claim
from notify_service.signing import webhook_headers

USER_AGENT = "Calendence-Webhooks/1"
# Enough of an answer to keep the connection reusable; the rest is not needed.
_MAX_RESPONSE_BYTES = 64 * 1024
_MAX_ERROR_CHARS = 500


class Sender:
    def __init__(
        self,
        allow_private: bool,
        timeout_seconds: float,
        max_connections: int,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.resolver = resolver or targets.PublicOnlyResolver(allow_private)
        self.timeout_seconds = timeout_seconds
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sender:
        connector = aiohttp.TCPConnector(
            resolver=self.resolver,
            limit=self.max_connections,
            ttl_dns_cache=10,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            # Endpoints must not set cookies for each other, nor proxies be taken from
            # the environment.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, claim: Claim) -> AttemptResult:
        assert self._session is not None, "use the Sender as an async context manager"
        attempted_at = datetime.now(UTC)
        # Standard Webhooks timestamps are whole seconds.
        sent_at = attempted_at.replace(microsecond=0)
        headers = webhook_headers(claim.signing_secrets, str(claim.event_id), sent_at, claim.body)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            targets.check_static(claim.url, self.allow_private)
            async with self._session.post(
                claim.url, data=claim.body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                # The status is the answer; an unreadable body after it changes nothing.
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await response.content.read(_MAX_RESPONSE_BYTES)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
                if 300 <= status < 400:
                    location = response.headers.get("Location", "")
                    error += f": redirects are not followed ({location})"
        except targets.RefusedTarget as refused:
            error = f"refused: {refused}"
        except aiohttp.ClientConnectorDNSError as dns:
            if isinstance(dns.os_error, targets.RefusedTarget):
                error = f"refused: {dns.os_error}"
            else:
                error = f"DNS lookup failed: {dns.os_error}"
        except TimeoutError:
            error = f"timed out after {self.timeout_seconds:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as failure:
            error = f"{type(failure).__name__}: {failure}".strip()
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        return AttemptResult(
            attempted_at=attempted_at,
            latency_ms=latency_ms,
            status_code=status,
            error=error[:_MAX_ERROR_CHARS] if error else None,
        )
