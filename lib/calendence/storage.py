"""Store clients with bounded pools: PostgreSQL (JSON columns decoded by orjson) and Redis
(one server or a Redis Cluster, chosen by the URL)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import hiredis
import orjson
import redis.exceptions
from asyncpg.pool import PoolAcquireContext
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)

from calendence import jsonfmt


async def _init_connection(connection: asyncpg.Connection) -> None:
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type,
            encoder=lambda value: jsonfmt.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


class TrackedConnection(asyncpg.Connection):  # type: ignore[misc]  # no type hints
    """A pooled connection that knows whether its session state changed."""

    session_changed = False

    def mark_session_changed(self) -> None:
        self.session_changed = True


def mark_session_changed(connection: asyncpg.Connection) -> None:
    """Tell the pool this connection's session state changed (a session-level lock,
    LISTEN, SET): it runs the full reset query when the connection comes back."""
    connection.mark_session_changed()  # through the pool's proxy, on the connection


async def _reset_if_changed(connection: TrackedConnection) -> None:
    """The pool's reset, run on every release.

    asyncpg has already rolled back an open transaction and dropped the listeners'
    callbacks by then. Its default would send one more statement each time (`SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`), a round trip per
    release; our queries change no session state, so only a connection marked by
    `mark_session_changed` pays it.
    """
    if connection.session_changed:
        query = connection.get_reset_query()
        if query:
            await connection.execute(query)
        connection.session_changed = False


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg has no type hints
    """A pool whose every wait for a connection is bounded.

    asyncpg waits for a free connection forever unless told otherwise, including
    inside `pool.fetch()` and friends. Here every acquire without its own timeout waits
    at most `acquire_timeout` and then raises TimeoutError, which services answer as
    UNAVAILABLE (`calendence.errors.STORE_BUSY_ERRORS`): a burst beyond the pool queues
    briefly, and a longer one is told to come back, never left hanging.
    """

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def open_pool(
    dsn: str, min_size: int, max_size: int, acquire_timeout: float = 3.0
) -> asyncpg.Pool:
    # asyncpg.create_pool's own defaults for the rest, among them a cache of 100
    # prepared statements per connection (every query text is prepared once).
    pool = BoundedPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_reset_if_changed,
        loop=None,
        connection_class=TrackedConnection,
        record_class=asyncpg.Record,
        acquire_timeout=acquire_timeout,
    )
    await pool
    return pool


class Repository:
    """A service's SQL for one part of its domain, run on the service's pool."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db


async def fetch_dict(
    db: asyncpg.Pool | asyncpg.Connection, query: str, *args: Any
) -> dict[str, Any] | None:
    """The query's first row as a dict; None when it returns no row."""
    row = await db.fetchrow(query, *args)
    return dict(row) if row else None


# What services hold: one Redis server or a Redis Cluster. Both run the same commands,
# scripts and non-transactional pipelines; a cluster needs every script's keys (and each
# multi-key command's) in one hash slot, which the key layouts keep (`{...}` hash tags).
RedisClient: TypeAlias = Redis | RedisCluster


def keys_meet_anywhere(redis: RedisClient) -> bool:
    """Whether any keys may meet in one script or pipeline command: on one Redis server
    they may (so a script can touch keys of several hash tags, or a script count many
    keys in); on a cluster a script's keys must share one hash slot."""
    return not isinstance(redis, RedisCluster)


# `redis+cluster://host:port,host:port/` (or `rediss+cluster://` for TLS): a Redis
# Cluster, every listed node a seed (one is enough; more let a client start while some
# are down). Anything else is one server, as redis-py reads it.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def open_redis(
    url: str,
    max_connections: int,
    wait_seconds: float,
    *,
    socket_timeout: float,
    **options: Any,
) -> RedisClient:
    """A Redis client whose every wait is bounded: for one of `max_connections`
    connections at most `wait_seconds`, for an answer at most `socket_timeout` (a
    node that hangs without closing its connections, frozen or cut off, is given up
    on), and the caller answers "busy, retry" (STORE_BUSY_ERRORS) either way.

    redis-py's default pool raises "Too many connections" the moment a burst outgrows
    it; this one makes the excess wait its turn instead.
    """
    options = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout} | (
        options
    )
    if is_cluster_url(url):
        return _open_cluster(url, max_connections, wait_seconds, **options)
    # As BlockingConnectionPool.from_url builds it (the URL's options win), with the
    # URL's kind of connection packing commands with hiredis.
    from_url: dict[str, Any] = dict(parse_url(url))
    plain = from_url.pop("connection_class", Connection)
    pool = BlockingConnectionPool(
        max_connections=max_connections,
        timeout=wait_seconds,
        connection_class=_PACKED_BY_HIREDIS.get(plain, plain),
        **(options | from_url),
    )
    return Redis(connection_pool=pool)


# What hiredis packs exactly as redis-py's encoder would (UTF-8, strict; whole numbers
# in decimal). Anything else (floats, memoryviews, a bool that must be refused) goes
# redis-py's way.
_HIREDIS_PACKS = frozenset({bytes, str, int})


class _PackedByHiredis(AbstractConnection):
    """Commands packed by hiredis's C packer, as redis-py's own synchronous client
    does when hiredis is installed; its asyncio connections pack them in Python, about
    8 µs for a 13-argument EVALSHA against 1 µs (one per hold in hold-service)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        # A name with a space ("CONFIG GET") is split into words by redis-py's packing.
        spaced = " " in name if type(name) is str else type(name) is bytes and b" " in name
        if spaced or not all(type(arg) in _HIREDIS_PACKS for arg in args):
            return super().pack_command(*args)
        return [hiredis.pack_command(args)]


class _PlainPackedByHiredis(_PackedByHiredis, Connection):
    pass


class _SSLPackedByHiredis(_PackedByHiredis, SSLConnection):
    pass


class _UnixPackedByHiredis(_PackedByHiredis, UnixDomainSocketConnection):
    pass


_PACKED_BY_HIREDIS: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: _PlainPackedByHiredis,
    SSLConnection: _SSLPackedByHiredis,
    UnixDomainSocketConnection: _UnixPackedByHiredis,
}


def cluster_seeds(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """A `redis+cluster://` URL's seed nodes (host, port) and the connection options
    it carries (credentials, TLS, query options), as redis-py reads a one-node URL."""
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a Redis Cluster URL: {url!r}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    seeds = []
    for host in filter(None, (h.strip() for h in hosts.split(","))):
        name, colon, port = host.rpartition(":")
        seeds.append((name, int(port)) if colon else (host, 6379))
    if not seeds:
        raise ValueError(f"no node in the Redis Cluster URL {url!r}")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"a Redis Cluster has only database 0: {url!r}")
    first = f"{seeds[0][0]}:{seeds[0][1]}"
    netloc = f"{credentials}@{first}" if credentials else first
    single = urlunsplit((CLUSTER_SCHEMES[parts.scheme], netloc, "", parts.query, ""))
    options: dict[str, Any] = dict(parse_url(single))
    for key in ("host", "port", "db", "path"):
        options.pop(key, None)
    if options.pop("connection_class", None) is not None:  # rediss: an SSL connection
        options["ssl"] = True
    return seeds, options


def _open_cluster(
    url: str, max_connections: int, wait_seconds: float, **options: Any
) -> BoundedRedisCluster:
    seeds, from_url = cluster_seeds(url)
    return BoundedRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in seeds],
        max_operations=max_connections,
        wait_seconds=wait_seconds,
        **(options | from_url),  # the URL's own options win, as redis-py's from_url
    )


# Set while a task runs a cluster operation, so that what redis-py runs inside it (a
# pipeline's redirected command) does not wait for a second turn.
_HAS_TURN: contextvars.ContextVar[bool] = contextvars.ContextVar("redis_turn", default=False)

# Connections per node beyond the operations allowed at once: redis-py refreshes the
# cluster's layout over them.
_SPARE_CONNECTIONS = 4


class BoundedRedisCluster(RedisCluster):
    """redis-py's cluster client, with at most `max_operations` commands or pipelines
    at once; the excess waits its turn up to `wait_seconds`, then ConnectionError.

    redis-py keeps a pool per node that raises as soon as it is full (and a full pool
    inside a pipeline makes it drop every connection to retry); here an operation takes
    one connection per node it touches at most, so no node's pool ever fills.
    """

    def __init__(self, *, max_operations: int, wait_seconds: float, **kwargs: Any) -> None:
        super().__init__(max_connections=max_operations + _SPARE_CONNECTIONS, **kwargs)
        self._turns = asyncio.Semaphore(max_operations)
        self._wait_seconds = wait_seconds

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if _HAS_TURN.get():
            yield
            return
        try:
            async with asyncio.timeout(self._wait_seconds):
                await self._turns.acquire()
        except TimeoutError:
            raise redis.exceptions.ConnectionError(
                f"no Redis Cluster connection free within {self._wait_seconds}s"
            ) from None
        token = _HAS_TURN.set(True)
        try:
            yield
        finally:
            _HAS_TURN.reset(token)
            self._turns.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.turn():
            with _closed_under_us_is_a_connection_error():
                return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if shard_hint:
            raise redis.exceptions.RedisClusterException("shard_hint is not for a cluster")
        # As RedisCluster.pipeline does; redis-py's typing marks an attribute abstract
        # that its pipeline never uses.
        return _BoundedPipeline(self, transaction)  # type: ignore[abstract]


class _BoundedPipeline(ClusterPipeline):
    """A non-transactional cluster pipeline that takes one turn of its client, and
    queues EVALSHA and MGET like any command.

    redis-py's cluster pipeline refuses its `evalsha` and `mget` methods outright, since
    it cannot know their keys share a slot; queued by name, each goes to the node of
    its keys' slot, and keys in two slots are refused in the client (CROSSSLOT) before
    anything is sent. The same code then pipelines scripts on one server or a cluster.
    """

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def mget(self, keys: Any, *args: Any) -> Any:
        names = [keys] if isinstance(keys, str | bytes) else list(keys)
        return self.execute_command("MGET", *names, *args)

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        client = self.cluster_client
        assert isinstance(client, BoundedRedisCluster)
        async with client.turn():
            with _closed_under_us_is_a_connection_error():
                return await super().execute(raise_on_error, allow_redirections)


@contextmanager
def _closed_under_us_is_a_connection_error() -> Iterator[None]:
    """After a timeout or a failover redis-py's cluster client closes a node's
    connections (the idle ones, or all) while another task may be connecting or sending
    on one of them; that task then fails inside the connection with RuntimeError (uvloop:
    "the handler is closed") or AttributeError (its writer already None) instead of a
    connection error. It is one: the command got no answer, and the caller may retry."""
    try:
        yield
    except RuntimeError as error:
        if "closed" not in str(error):
            raise
        raise redis.exceptions.ConnectionError(f"connection closed meanwhile: {error}") from error
    except AttributeError as error:
        if "'NoneType' object" not in str(error):
            raise
        raise redis.exceptions.ConnectionError(f"connection closed meanwhile: {error}") from error
