"""Redis commands leave our clients packed by hiredis's C packer: byte for byte what
redis-py's own packing sends, and redis-py's way for what hiredis would write apart."""

from __future__ import annotations

from typing import Any

import pytest
from calendence.storage import open_redis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

COMMANDS: list[tuple[Any, ...]] = [
    ("EVALSHA", "a" * 40, 2, "cal:{r:1}:h:9", "cal:{r:1}:g:7", "9|fp", 600000, "Zoë ☕"),
    (b"SET", b"key", b"\x00\xff binary", "PX", 10),
    ("GET", "k"),
    ("CONFIG GET", "maxmemory"),  # a name with a space: two words on the wire
    (b"CONFIG GET", b"maxmemory"),
    ("ZADD", "pending", 1.5, "member", -2, "other"),  # floats: redis-py's way
    ("SET", "k", memoryview(b"view")),
    ("SET", "k", ""),
]


def packed_by_redis_py(*args: Any) -> bytes:
    return b"".join(Connection().pack_command(*args))


def packed_by_ours(*args: Any) -> bytes:
    client = open_redis("redis://127.0.0.1:1/0", 1, 0.1, socket_timeout=0.1)
    assert isinstance(client, Redis)
    pool = client.connection_pool
    connection = pool.connection_class(**pool.connection_kwargs)
    return b"".join(bytes(part) for part in connection.pack_command(*args))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_a_command_is_packed_as_redis_py_packs_it(command: tuple[Any, ...]) -> None:
    assert packed_by_ours(*command) == packed_by_redis_py(*command)


def test_a_bool_is_refused_as_redis_py_refuses_it() -> None:
    with pytest.raises(DataError):
        packed_by_ours("SET", "k", True)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:1/0", Connection),
        ("rediss://127.0.0.1:1/0", SSLConnection),
        ("unix:///tmp/nothing.sock", UnixDomainSocketConnection),
    ],
)
def test_each_kind_of_url_keeps_its_kind_of_connection(url: str, kind: type) -> None:
    client = open_redis(url, 1, 0.1, socket_timeout=0.1)
    assert isinstance(client, Redis)
    assert client.connection_pool.connection_class.__bases__[-1] is kind
