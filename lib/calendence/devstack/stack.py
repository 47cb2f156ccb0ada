"""The whole platform on one machine: stores (unless URLs are given) and four services."""

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

from calendence.devstack.processes import ManagedProcess, free_port, wait_for_port
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
    stores: dict[str, RunningStore] = field(default_factory=dict)
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
        ports = {name: free_port() for name in SERVICES}
        self.gateway_url = f"http://127.0.0.1:{ports['gateway']}"
        stripe_env = self._stripe_env()
        mail_env = self._mail_env()
        self.env = {
            **os.environ,
            "DATABASE_URL": urls["database"],
            "NOTIFY_DATABASE_URL": urls["notify_database"],
            "REDIS_URL": urls["redis"],
            "NATS_URL": urls["nats"],
            "BOOKING_SERVICE_PORT": str(ports["booking-service"]),
            "HOLD_SERVICE_PORT": str(ports["hold-service"]),
            "NOTIFY_SERVICE_PORT": str(ports["notify-service"]),
            "GATEWAY_PORT": str(ports["gateway"]),
            "BOOKING_SERVICE_ADDR": f"127.0.0.1:{ports['booking-service']}",
            "HOLD_SERVICE_ADDR": f"127.0.0.1:{ports['hold-service']}",
            "NOTIFY_SERVICE_ADDR": f"127.0.0.1:{ports['notify-service']}",
            # Manage links in booking answers point at this gateway.
            "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", self.gateway_url),
            **stripe_env,
            **mail_env,
            **self.service_env,
        }
        # Services check their schema at start and refuse an older one: migrate first,
        # with the command compose and the Kubernetes Job run.
        self.migrate()
        for name in SERVICES:
            self.start_service(name)
        self.wait_until_ready()
        if self.supervise:
            self.supervisor = Supervisor(
                self.services,
                self._restart_service,
                self.state_dir / "logs" / "supervisor.log",
                on_restart=self.on_restart,
            )
            self.supervisor.start()

    def _store_urls(self) -> dict[str, str]:
        database = os.environ.get("DATABASE_URL")
        if database is None:
            self.stores["postgres"] = start_postgres(self.state_dir)
            base = self.stores["postgres"].url
            database, notify = f"{base}/calendence", f"{base}/calendence_notify"
        else:
            notify = os.environ.get("NOTIFY_DATABASE_URL", database)
        redis = os.environ.get("REDIS_URL")
        if redis is None:
            self.stores["redis"] = start_redis(self.state_dir, persist=self.persist)
            redis = self.stores["redis"].url
        nats = os.environ.get("NATS_URL")
        if nats is None:
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

    def start_service(self, name: str, extra_env: dict[str, str] | None = None) -> ManagedProcess:
        process = ManagedProcess(
            name,
            [sys.executable, "-m", _MODULES[name]],
            self.state_dir / "logs" / f"{name}.log",
            env={**self.env, **(extra_env or {})},
        )
        self._extra_env[name] = extra_env or {}
        self.services[name] = process
        port_var = "GATEWAY_PORT" if name == "gateway" else f"{_MODULES[name].upper()}_PORT"
        wait_for_port(int(self.env[port_var]), 60, process)
        return process

    def _restart_service(self, name: str) -> ManagedProcess:
        self.services[name].stop()  # gone already: this only closes its log
        return self.start_service(name, self._extra_env.get(name))

    def wait_until_ready(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.gateway_url}/readyz", timeout=2) as answer:
                    return dict(json.load(answer))
            except urllib.error.HTTPError as error:
                last = json.load(error)
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the stack did not become ready: {last}; logs in {self.state_dir}/logs")

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
        for name in reversed(SERVICES):
            if name in self.services:
                self.services[name].stop()
        for store in reversed(list(self.stores.values())):
            store.process.stop()
