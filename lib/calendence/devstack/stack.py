"""The whole platform on one machine: stores (unless URLs are given) and four services.

`replicas` runs that many processes of each service, each on its own port; the gRPC
clients get every replica's address (round robin) and there is one gateway URL per
replica. `nats_cluster` starts a three-node NATS cluster with JetStream (three copies
of the events stream and its consumer) instead of one server.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calendence.devstack.nats_cluster import NatsCluster, start_nats_cluster
from calendence.devstack.processes import ManagedProcess, free_port, wait_for_port
from calendence.devstack.redis_cluster import LocalRedisCluster, start_redis_cluster
from calendence.devstack.smtp_local import start_smtp
from calendence.devstack.stores import RunningStore, start_nats, start_postgres, start_redis
from calendence.devstack.supervisor import Supervisor

SERVICES = ("booking-service", "notify-service", "hold-service", "gateway")
# What `make run` sets for every service; the benchmark starts its stack with it too,
# so that it measures what a newcomer runs.
RUN_SERVICE_ENV = {
    # The development setting that lets webhooks reach a receiver on localhost.
    "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
}
_MODULES = {
    "booking-service": "booking_service",
    "notify-service": "notify_service",
    "hold-service": "hold_service",
    "gateway": "gateway",
}
_PORT_VARIABLES = {
    "booking-service": "BOOKING_SERVICE_PORT",
    "notify-service": "NOTIFY_SERVICE_PORT",
    "hold-service": "HOLD_SERVICE_PORT",
    "gateway": "GATEWAY_PORT",
}
# The copies of each JetStream stream and consumer on the local NATS cluster.
CLUSTER_STREAM_REPLICAS = 3


def replica_name(service: str, number: int) -> str:
    """`gateway` for the first replica (the name every single-replica tool knows),
    `gateway-2`, `gateway-3` ... for the others."""
    return service if number == 1 else f"{service}-{number}"


def service_of(name: str) -> str:
    """`gateway-2` -> `gateway`."""
    for service in _MODULES:
        if name == service or (
            name.startswith(service + "-") and name[len(service) + 1 :].isdigit()
        ):
            return service
    raise KeyError(name)


@dataclass
class LocalStack:
    state_dir: Path
    # Keep Redis and NATS data between runs (the newcomer's stack) or not (tests).
    persist: bool = True
    # Extra environment for every service, e.g. a short HOLD_TTL_SECONDS in tests.
    service_env: dict[str, str] = field(default_factory=dict)
    # Restart a service that exits unexpectedly (`make run`); tests that stop and start
    # services themselves leave it off.
    supervise: bool = False
    # Told of each service the supervisor restarts (`make run` rewrites stack.json).
    on_restart: Callable[[str, ManagedProcess], None] | None = None
    # Processes of each service (`make run REPLICAS=2`).
    replicas: int = 1
    # A three-node NATS cluster instead of one server (`make run CLUSTER=1`).
    nats_cluster: bool = False
    stores: dict[str, RunningStore] = field(default_factory=dict)
    # The NATS cluster's nodes, when `nats_cluster` started one.
    nats_nodes: NatsCluster | None = None
    # Every replica's port, by process name (`gateway-2`).
    ports: dict[str, int] = field(default_factory=dict)
    gateway_urls: list[str] = field(default_factory=list)
    # A Redis Cluster (three primaries, three replicas) instead of one Redis server.
    redis_cluster: bool = False
    # The Redis Cluster's nodes, when `redis_cluster` started one.
    redis_nodes: LocalRedisCluster | None = None
    # More settings for the embedded PostgreSQL (`name=value`), e.g. the bench's
    # statement counting.
    postgres_settings: tuple[str, ...] = ()
    services: dict[str, ManagedProcess] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    gateway_url: str = ""
    supervisor: Supervisor | None = None
    # The extra environment each service was last started with, reused by restarts.
    _extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # Where the local SMTP server keeps the mails it received (None: SMTP_URL given).
    mailbox: Path | None = None

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        urls = self._store_urls()
        self.ports = {name: free_port() for name in self.process_names()}
        self.gateway_urls = [
            f"http://127.0.0.1:{self.ports[name]}"
            for name in self.process_names()
            if service_of(name) == "gateway"
        ]
        self.gateway_url = self.gateway_urls[0]
        stripe_env = self._stripe_env()
        mail_env = self._mail_env()
        self.env = {
            **os.environ,
            "DATABASE_URL": urls["database"],
            "NOTIFY_DATABASE_URL": urls["notify_database"],
            "REDIS_URL": urls["redis"],
            "NATS_URL": urls["nats"],
            **self._cluster_env(),
            # The first replica's ports; each replica is started with its own.
            **{variable: str(self.ports[service]) for service, variable in _PORT_VARIABLES.items()},
            "BOOKING_SERVICE_ADDR": self._addresses("booking-service"),
            "HOLD_SERVICE_ADDR": self._addresses("hold-service"),
            "NOTIFY_SERVICE_ADDR": self._addresses("notify-service"),
            # Manage links in booking answers point at this gateway.
            "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", self.gateway_url),
            **stripe_env,
            **mail_env,
            **self.service_env,
        }
        # Services check their schema at start and refuse an older one: migrate first,
        # with the command compose and the Kubernetes Job run.
        self.migrate()
        self.start_services(self.process_names())
        self.wait_until_ready()
        if self.supervise:
            self.supervisor = Supervisor(
                self.services,
                self._restart_service,
                self.state_dir / "logs" / "supervisor.log",
                on_restart=self.on_restart,
            )
            self.supervisor.start()

    def process_names(self) -> list[str]:
        """Every service process, in start order: each service's replicas together."""
        return [
            replica_name(service, number)
            for service in SERVICES
            for number in range(1, self.replicas + 1)
        ]

    def _addresses(self, service: str) -> str:
        """Every replica of `service`, as its clients' *_SERVICE_ADDR setting."""
        return ",".join(
            f"127.0.0.1:{self.ports[replica_name(service, number)]}"
            for number in range(1, self.replicas + 1)
        )

    def _cluster_env(self) -> dict[str, str]:
        if self.nats_nodes is None:
            return {}
        return {"NATS_STREAM_REPLICAS": str(CLUSTER_STREAM_REPLICAS)}

    @property
    def store_pids(self) -> dict[str, int]:
        """Every store process this stack started, by name (`nats-2`, `postgres`)."""
        pids = {name: store.process.pid for name, store in self.stores.items()}
        if self.nats_nodes is not None:
            pids |= self.nats_nodes.pids
        if self.redis_nodes is not None:
            pids |= self.redis_nodes.pids  # redis-1 .. redis-6; roles: redis_nodes.view()
        return pids

    def _store_urls(self) -> dict[str, str]:
        database = os.environ.get("DATABASE_URL")
        if database is None:
            self.stores["postgres"] = start_postgres(
                self.state_dir, settings=self.postgres_settings
            )
            base = self.stores["postgres"].url
            database, notify = f"{base}/calendence", f"{base}/calendence_notify"
        else:
            notify = os.environ.get("NOTIFY_DATABASE_URL", database)
        redis = os.environ.get("REDIS_URL")
        if redis is None and self.redis_cluster:
            self.redis_nodes = start_redis_cluster(self.state_dir, persist=self.persist)
            redis = self.redis_nodes.url
        if redis is None:
            self.stores["redis"] = start_redis(self.state_dir, persist=self.persist)
            redis = self.stores["redis"].url
        nats = os.environ.get("NATS_URL")
        if nats is None and self.nats_cluster:
            self.nats_nodes = start_nats_cluster(self.state_dir)
            nats = self.nats_nodes.url
        elif nats is None:
            self.stores["nats"] = start_nats(self.state_dir)
            nats = self.stores["nats"].url
        return {"database": database, "notify_database": notify, "redis": redis, "nats": nats}

    def _stripe_env(self) -> dict[str, str]:
        """Stripe itself when its keys are set; otherwise the local Stripe-compatible server."""
        if os.environ.get("STRIPE_SECRET_KEY"):
            return {}
        port = free_port()
        secret = "whsec_local_" + secrets.token_hex(16)
        process = ManagedProcess(
            "stripe",
            [
                sys.executable,
                "-m",
                "calendence.devstack.stripe_local",
                "--port",
                str(port),
                "--webhook-url",
                f"{self.gateway_url}/webhooks/stripe",
                "--webhook-secret",
                secret,
            ],
            self.state_dir / "logs" / "stripe.log",
        )
        wait_for_port(port, 30, process)
        url = f"http://127.0.0.1:{port}"
        self.stores["stripe"] = RunningStore("stripe", url, process)
        return {
            "STRIPE_SECRET_KEY": "sk_test_local",
            "STRIPE_API_BASE": url,
            "STRIPE_WEBHOOK_SECRET": secret,
        }

    def _mail_env(self) -> dict[str, str]:
        """The given SMTP server when SMTP_URL is set; otherwise a local one that keeps
        every mail as a file in <state>/mailbox."""
        if os.environ.get("SMTP_URL"):
            return {}
        url, self.mailbox, process = start_smtp(self.state_dir)
        self.stores["smtp"] = RunningStore("smtp", url, process)
        return {"SMTP_URL": url, "MAIL_FROM": "Calendence <bookings@calendence.localhost>"}

    def restart_smtp(self) -> None:
        """Start the local SMTP server again on its port (after a test stopped it)."""
        port = int(self.stores["smtp"].url.rsplit(":", 1)[1])
        url, self.mailbox, process = start_smtp(self.state_dir, port)
        self.stores["smtp"] = RunningStore("smtp", url, process)

    def migrate(self) -> None:
        """Run `calendence-migrate` against this stack's databases."""
        log_path = self.state_dir / "logs" / "migrate.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as log:
            done = subprocess.run(
                [sys.executable, "-m", "calendence.migrations"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=300,
            )
        if done.returncode != 0:
            raise RuntimeError(f"calendence-migrate failed; its log: {log_path}")

    def start_services(self, names: list[str]) -> None:
        """Start several processes (again) at once: each waits for the stores and peers
        it needs by itself, and their start-ups overlap."""
        for name in names:
            if name in self.services:
                self.services[name].stop()  # gone already, or stopped now
            self._spawn(name, self._extra_env.get(name))
        for name in names:
            wait_for_port(self.ports[name], 60, self.services[name])

    def start_service(self, name: str, extra_env: dict[str, str] | None = None) -> ManagedProcess:
        """Start one process: a service's first replica by the service's name
        (`gateway`), another by its replica name (`gateway-2`)."""
        process = self._spawn(name, extra_env)
        wait_for_port(self.ports[name], 60, process)
        return process

    def _spawn(self, name: str, extra_env: dict[str, str] | None = None) -> ManagedProcess:
        service = service_of(name)
        process = ManagedProcess(
            name,
            [sys.executable, "-m", _MODULES[service]],
            self.state_dir / "logs" / f"{name}.log",
            env={**self.env, _PORT_VARIABLES[service]: str(self.ports[name]), **(extra_env or {})},
        )
        self._extra_env[name] = extra_env or {}
        self.services[name] = process
        return process

    def _restart_service(self, name: str) -> ManagedProcess:
        self.services[name].stop()  # gone already: this only closes its log
        return self.start_service(name, self._extra_env.get(name))

    def wait_until_ready(self, timeout: float = 60) -> dict[str, Any]:
        """Wait until every gateway's /readyz is green; returns the first one's."""
        deadline = time.monotonic() + timeout
        ready: dict[str, Any] = {}
        for url in reversed(self.gateway_urls or [self.gateway_url]):
            ready = self._wait_until_ready(url, deadline)
        return ready

    def _wait_until_ready(self, gateway_url: str, deadline: float) -> dict[str, Any]:
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self._raise_if_a_service_exited()
            try:
                with urllib.request.urlopen(f"{gateway_url}/readyz", timeout=2) as answer:
                    return dict(json.load(answer))
            except urllib.error.HTTPError as error:
                last = json.load(error)
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the stack did not become ready: {last}; logs in {self.state_dir}/logs")

    def _raise_if_a_service_exited(self) -> None:
        for name, process in self.services.items():
            if not process.running():
                tail = process.log_path.read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(
                    f"{name} exited with {process.popen.returncode} before the stack was "
                    f"ready; the end of {process.log_path}:\n" + "\n".join(tail)
                )

    def describe(self) -> dict[str, Any]:
        """What `make run` writes to stack.json (besides the demo business)."""
        stores = {name: store.url for name, store in self.stores.items()}
        if self.nats_nodes is not None:
            stores["nats"] = self.nats_nodes.url
        return {
            "gateway_url": self.gateway_url,
            "gateway_urls": self.gateway_urls,
            "state_dir": str(self.state_dir),
            "logs": str(self.state_dir / "logs"),
            "mailbox": str(self.mailbox) if self.mailbox else None,
            "stores": stores,
            # Every process by name: each replica (`gateway-2`) and each store node
            # (`nats-2`), for a developer who wants to kill one.
            "services": {name: process.pid for name, process in self.services.items()},
            "store_pids": self.store_pids,
        }

    def admin(self, *args: str) -> Any:
        """Run the admin CLI against this stack's database; returns its JSON output."""
        done = subprocess.run(
            [sys.executable, "-m", "booking_service.admin", *args],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"calendence-admin {' '.join(args)} failed:\n{done.stderr}")
        return json.loads(done.stdout)

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        for name in reversed(self.process_names()):
            if name in self.services:
                self.services[name].stop()
        for store in reversed(list(self.stores.values())):
            store.process.stop()
        if self.nats_nodes is not None:
            self.nats_nodes.stop()
        if self.redis_nodes is not None:
            self.redis_nodes.stop()
