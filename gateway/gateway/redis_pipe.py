"""A small Redis client for the one command on every request's path: the rate limit.

Every concurrent request's command goes down one connection without waiting for the
ones before it (Redis answers in order), so a burst of requests costs one write and one
read of many replies. redis-py, which the gateway uses for everything else, spends
60-75 us of the gateway's CPU per command (connection pool, command objects, parser);
this spends about 5 us under load, which keeps the rate limit off the hold benchmark.

It speaks only what the rate limiter needs: commands out, simple, error, integer, bulk
and array replies back; AUTH and SELECT from the URL (redis://, rediss://, unix://).
A command that gets no answer within `timeout` drops the connection and fails every
command waiting on it; the next command reconnects (at most one attempt a second), so
callers see `RedisUnavailable` quickly instead of waiting on a dead link.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from typing import Any, cast

from redis.asyncio.connection import SSLConnection, parse_url

_CRLF = b"\r\n"
_RECONNECT_PAUSE_SECONDS = 1.0


class RedisUnavailable(Exception):
    """No answer: not connected, connection lost, or too slow."""


class ReplyError(Exception):
    """Redis answered with an error (e.g. NOSCRIPT)."""


class _Incomplete(Exception):
    pass


def encode(args: tuple[object, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def parse(buffer: bytearray, start: int) -> tuple[Any, int]:
    """One reply from `buffer` at `start`: (value, where the next one starts)."""
    end = buffer.find(_CRLF, start)
    if end < 0:
        raise _Incomplete
    kind, line, position = buffer[start], bytes(buffer[start + 1 : end]), end + 2
    if kind == ord(":"):
        return int(line), position
    if kind == ord("+"):
        return line.decode(), position
    if kind == ord("-"):
        return ReplyError(line.decode()), position
    if kind == ord("$"):
        size = int(line)
        if size < 0:
            return None, position
        if len(buffer) < position + size + 2:
            raise _Incomplete
        return bytes(buffer[position : position + size]), position + size + 2
    if kind == ord("*"):
        count = int(line)
        if count < 0:
            return None, position
        items = []
        for _ in range(count):
            item, position = parse(buffer, position)
            items.append(item)
        return items, position
    raise RedisUnavailable(f"unexpected reply from Redis: {bytes(buffer[start:end])!r}")


class _Link(asyncio.Protocol):
    """One connection: replies are matched to commands in the order they were sent."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.buffer = bytearray()
        self.lost = False
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        start = 0
        try:
            while self.waiting:
                reply, start = parse(self.buffer, start)
                future, _ = self.waiting.popleft()
                if not future.done():  # its caller may have gone away meanwhile
                    future.set_result(reply)
        except _Incomplete:
            pass
        except RedisUnavailable:
            self.abort()
        del self.buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(RedisUnavailable("the connection to Redis was lost"))

    def send(self, args: tuple[object, ...]) -> asyncio.Future[Any]:
        if self.lost or self.transport is None:
            raise RedisUnavailable("not connected to Redis")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.waiting.append((future, time.monotonic() + self.timeout))
        self.transport.write(encode(args))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout, self._check)
        return future

    def _check(self) -> None:
        """Drop a connection whose oldest command went unanswered for `timeout`."""
        self._watchdog = None
        if not self.waiting:
            return
        deadline = self.waiting[0][1]
        if time.monotonic() >= deadline:
            self.abort()
            return
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(deadline - time.monotonic(), self._check)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class PipelinedRedis:
    def __init__(self, url: str, timeout: float = 1.0) -> None:
        self.settings: dict[str, Any] = dict(parse_url(url))
        self.timeout = timeout
        self._link: _Link | None = None
        self._connecting: asyncio.Task[_Link] | None = None
        self._next_attempt = 0.0

    async def call(self, *args: object) -> Any:
        """Send one command; its reply, or ReplyError / RedisUnavailable."""
        link = self._link
        if link is None or link.lost:
            link = await self._connected()
        reply = await link.send(args)
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def _connected(self) -> _Link:
        if self._connecting is None:
            if time.monotonic() < self._next_attempt:
                raise RedisUnavailable("Redis was unreachable a moment ago")
            self._next_attempt = time.monotonic() + _RECONNECT_PAUSE_SECONDS
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            # Shielded: one caller going away must not cancel the others' connection.
            link = await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None
        self._link = link
        return link

    async def _connect(self) -> _Link:
        loop = asyncio.get_running_loop()
        settings = self.settings

        def link() -> _Link:
            return _Link(self.timeout)

        try:
            async with asyncio.timeout(self.timeout):
                if "path" in settings:
                    _, protocol = await loop.create_unix_connection(link, settings["path"])
                else:
                    tls = (
                        ssl.create_default_context()
                        if settings.get("connection_class") is SSLConnection
                        else None
                    )
                    _, protocol = await loop.create_connection(
                        link, settings.get("host", "localhost"), settings.get("port", 6379), ssl=tls
                    )
                hello: list[asyncio.Future[Any]] = []
                if settings.get("password"):
                    credentials = [settings.get("username"), settings["password"]]
                    hello.append(protocol.send(("AUTH", *[c for c in credentials if c])))
                if settings.get("db"):
                    hello.append(protocol.send(("SELECT", settings["db"])))
                for reply in await asyncio.gather(*hello):
                    if isinstance(reply, ReplyError):
                        protocol.abort()
                        raise RedisUnavailable(f"Redis refused the connection: {reply}")
        except (OSError, TimeoutError) as error:
            raise RedisUnavailable(f"cannot reach Redis: {error}") from None
        return protocol

    def close(self) -> None:
        if self._link is not None:
            self._link.abort()
