"""Start-up and shutdown: one command migrates, services refuse an older schema, stores
are waited for, SIGTERM drains."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from calendence.devstack.processes import ManagedProcess, free_port
from calendence.devstack.stack import LocalStack
from calendence.migrations import load_migrations, migrate

SCHEMA_BEHIND = "database schema is older than this code: run calendence-migrate first"


def run_migrate_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calendence.migrations"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_until_exit(module: str, env: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    """Start a service that is expected to stop by itself; its exit status and log."""
    done = subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60
    )
    return done.returncode, [
        json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")
    ]


@pytest.fixture
async def empty_database(stack: LocalStack) -> AsyncIterator[str]:
    """A database of its own on the stack's server, never migrated."""
    name = f"schema_{uuid.uuid4().hex[:12]}"
    server = stack.env["DATABASE_URL"].rsplit("/", 1)[0]
    admin = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{server}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_the_migrate_command_run_again_changes_nothing(stack: LocalStack) -> None:
    # The stack ran it before starting the services; once more applies nothing.
    for _ in range(2):
        done = run_migrate_command(stack.env)
        assert done.returncode == 0, done.stderr
        assert "migration applied" not in done.stderr
        assert "schema up to date" in done.stderr


async def test_the_migrate_command_brings_a_new_database_to_every_migration(
    stack: LocalStack, empty_database: str
) -> None:
    env = {**stack.env, "DATABASE_URL": empty_database}
    first = await asyncio.to_thread(run_migrate_command, env)
    assert first.returncode == 0, first.stderr
    again = await asyncio.to_thread(run_migrate_command, env)
    assert again.returncode == 0, again.stderr
    assert "migration applied" not in again.stderr
    connection = await asyncpg.connect(empty_database)
    try:
        rows = await connection.fetch(
            "SELECT version FROM schema_migrations WHERE service = 'booking_service'"
        )
    finally:
        await connection.close()
    assert sorted(r["version"] for r in rows) == [
        m.version for m in load_migrations("booking_service")
    ]


async def test_booking_service_on_a_never_migrated_database_exits_saying_so(
    stack: LocalStack, empty_database: str
) -> None:
    env = {
        **stack.env,
        "DATABASE_URL": empty_database,
        "BOOKING_SERVICE_PORT": str(free_port()),
    }
    code, log = await asyncio.to_thread(run_until_exit, "booking_service", env)
    assert code == 3
    (refusal,) = [line for line in log if line["msg"] == SCHEMA_BEHIND]
    assert refusal["level"] == "error"
    assert refusal["missing_migrations"] == [m.version for m in load_migrations("booking_service")]
    # It refused before serving: no tables were made behind the migration's back.
    connection = await asyncpg.connect(empty_database)
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await connection.close()
    assert tables == 0


async def test_notify_service_on_a_database_one_migration_behind_exits_naming_it(
    stack: LocalStack, empty_database: str
) -> None:
    await migrate(empty_database, "notify_service")
    newest = load_migrations("notify_service")[-1].version
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute(
            "DELETE FROM schema_migrations WHERE service = 'notify_service' AND version = $1",
            newest,
        )
    finally:
        await connection.close()
    env = {
        **stack.env,
        "NOTIFY_DATABASE_URL": empty_database,
        "NOTIFY_SERVICE_PORT": str(free_port()),
    }
    code, log = await asyncio.to_thread(run_until_exit, "notify_service", env)
    assert code == 3
    (refusal,) = [line for line in log if line["msg"] == SCHEMA_BEHIND]
    assert refusal["schema"] == "notify_service"
    assert refusal["missing_migrations"] == [newest]


async def test_the_admin_command_on_a_never_migrated_database_says_to_migrate(
    stack: LocalStack, empty_database: str
) -> None:
    env = {**stack.env, "DATABASE_URL": empty_database}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "booking_service.admin", "create-hub", "--name", "Too Early"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "run calendence-migrate first" in done.stderr
    assert done.stdout == ""


def test_a_service_asked_to_migrate_points_at_the_migrate_command(stack: LocalStack) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "booking_service", "migrate"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "calendence-migrate" in done.stderr


async def test_migrations_are_recorded_once_each_in_order(stack: LocalStack) -> None:
    connection = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        rows = await connection.fetch(
            "SELECT version FROM schema_migrations WHERE service = 'booking_service' "
            "ORDER BY applied_at, version"
        )
    finally:
        await connection.close()
    versions = [r["version"] for r in rows]
    assert versions == sorted(set(versions))
    assert versions[:4] == [1, 2, 3, 4]


def test_a_service_whose_store_is_down_retries_and_says_why(stack: LocalStack) -> None:
    log_path = stack.state_dir / "logs" / "hold-service-no-redis.log"
    process = ManagedProcess(
        "hold-service-no-redis",
        [sys.executable, "-m", "hold_service"],
        log_path,
        env={
            **stack.env,
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "HOLD_SERVICE_PORT": str(free_port()),
        },
    )
    try:
        # Generous: on a busy machine the imports alone can take seconds; the loop
        # ends as soon as two retries are logged.
        deadline = time.monotonic() + 30
        retries: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(retries) < 2:
            time.sleep(0.2)
            retries = [
                json.loads(line)
                for line in log_path.read_text().splitlines()
                if "store unreachable, retrying" in line
            ]
        assert process.running()
    finally:
        process.stop()
    assert len(retries) >= 2
    assert retries[0]["store"] == "redis"
    assert "error" in retries[0]
    assert retries[1]["retry_in"] > retries[0]["retry_in"]


def test_sigterm_drains_a_service_and_it_exits_cleanly(stack: LocalStack) -> None:
    hold_service = stack.services["hold-service"]
    log_path = stack.state_dir / "logs" / "hold-service.log"
    before = log_path.stat().st_size
    try:
        hold_service.popen.terminate()
        code = hold_service.popen.wait(timeout=20)
    finally:
        stack.start_service("hold-service")
        stack.wait_until_ready()
    assert code == 0
    lines = [
        json.loads(line)["msg"]
        for line in log_path.read_bytes()[before:].decode().splitlines()
        if line.startswith("{")
    ]
    assert lines.index("shutting down") < lines.index("stopped")
