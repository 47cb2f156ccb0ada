"""Start-up and shutdown: migrations run once, stores are waited for, SIGTERM drains."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import asyncpg
from calendence.devstack.processes import ManagedProcess, free_port
from calendence.devstack.stack import LocalStack


def test_running_migrations_twice_changes_nothing(stack: LocalStack) -> None:
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "booking_service", "migrate"],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "migration applied" not in done.stderr


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
        deadline = time.monotonic() + 10
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
