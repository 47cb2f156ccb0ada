"""A three-node NATS cluster with JetStream, from the pip-installed nats-server.

Each node listens for clients and for its peers (cluster routes) on free ports of
127.0.0.1 and keeps its JetStream store in a folder of its own. `start_nats_cluster`
returns once every node reports healthy on its monitoring port (JetStream included, a
meta leader elected), so a stream with three replicas can be made at once.

A node can be killed, frozen (SIGSTOP) and started again on its ports and store
(`NatsNode.restart`), as the failure tests and a developer do.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from calendence.devstack.processes import ManagedProcess, free_port, start_cluster, wait_for_port
from calendence.devstack.stores import nats_server_binary

CLUSTER_NAME = "calendence"


@dataclass
class NatsNode:
    name: str
    client_port: int
    route_port: int
    monitor_port: int
    store_dir: Path
    log_path: Path
    # Every node's route URL; a node's own among them is ignored by nats-server.
    routes: list[str]
    process: ManagedProcess = field(init=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def argv(self) -> list[str]:
        return [
            nats_server_binary(),
            "--name",
            self.name,
            "-a",
            "127.0.0.1",
            "-p",
            str(self.client_port),
            "-m",
            str(self.monitor_port),
            "-js",
            "-sd",
            str(self.store_dir),
            "--cluster_name",
            CLUSTER_NAME,
            "--cluster",
            f"nats://127.0.0.1:{self.route_port}",
            "--routes",
            ",".join(self.routes),
        ]

    def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(self.name, self.argv(), self.log_path)
        wait_for_port(self.client_port, 30, self.process)

    def restart(self, timeout: float = 30) -> None:
        """Start the node again on its ports and store (after a kill), until healthy."""
        self.process.stop()
        self.start()
        wait_until_healthy([self], timeout)

    def healthy(self) -> bool:
        """The server's own /healthz: up, routes and JetStream (meta leader) current."""
        url = f"http://127.0.0.1:{self.monitor_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                return bool(json.load(answer).get("status") == "ok")
        except (urllib.error.URLError, OSError, ValueError):
            return False


@dataclass
class NatsCluster:
    nodes: list[NatsNode]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated: what NATS_URL is set to."""
        return ",".join(node.url for node in self.nodes)

    @property
    def pids(self) -> dict[str, int]:
        return {node.name: node.pid for node in self.nodes}

    def stop(self) -> None:
        for node in reversed(self.nodes):
            if hasattr(node, "process"):  # started
                node.process.stop()


def start_nats_cluster(state_dir: Path, size: int = 3, timeout: float = 60) -> NatsCluster:
    """`size` nodes named nats-1 .. nats-N, stores in <state>/nats-cluster/<name>."""
    route_ports = [free_port() for _ in range(size)]
    routes = [f"nats://127.0.0.1:{port}" for port in route_ports]
    nodes = [
        NatsNode(
            name=f"nats-{number}",
            client_port=free_port(),
            route_port=route_port,
            monitor_port=free_port(),
            store_dir=state_dir / "nats-cluster" / f"nats-{number}",
            log_path=state_dir / "logs" / f"nats-{number}.log",
            routes=routes,
        )
        for number, route_port in enumerate(route_ports, start=1)
    ]
    cluster = NatsCluster(nodes)
    start_cluster(nodes, lambda: wait_until_healthy(nodes, timeout), cluster.stop)
    return cluster


def wait_until_healthy(nodes: list[NatsNode], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(nodes)
    while waiting:
        for node in waiting:
            if not node.process.running():
                raise RuntimeError(f"{node.name} exited early; see {node.log_path}")
        waiting = [node for node in waiting if not node.healthy()]
        if not waiting:
            return
        if time.monotonic() > deadline:
            names = ", ".join(node.name for node in waiting)
            raise TimeoutError(f"NATS {names} not healthy after {timeout}s; see their logs")
        time.sleep(0.1)
