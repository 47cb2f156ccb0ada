"""`make run` keeps its services running: one killed with SIGKILL comes back by itself.

These tests start a stack of their own, supervised exactly as `make run` starts it
(the session's stack is not supervised: other tests stop and start its services).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from calendence.devstack.stack import SERVICES, LocalStack


@dataclass
class Supervised:
    stack: LocalStack
    postgres_log_at_start: str
    business_key: str


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervised]:
    running = LocalStack(tmp_path_factory.mktemp("supervised"), persist=False, supervise=True)
    try:
        running.start()
        postgres_log = (running.state_dir / "logs" / "postgres.log").read_text()
        yield Supervised(running, postgres_log, running.admin("demo")["business_key"])
    finally:
        running.stop()


def _supervisor_log(stack: LocalStack) -> str:
    path: Path = stack.state_dir / "logs" / "supervisor.log"
    return path.read_text() if path.exists() else ""


def _get(stack: LocalStack, path: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(stack.gateway_url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=3) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError as error:
        return 0, str(error)


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def _kill_and_wait_for_restart(stack: LocalStack, name: str) -> int:
    """SIGKILL the service as a crash would; the pid of the process that replaced it."""
    killed = stack.services[name].pid
    os.kill(killed, signal.SIGKILL)

    def restarted() -> bool:
        _, exited, after = _supervisor_log(stack).partition(f"{name} (pid {killed}) exited")
        return bool(exited) and f"{name} restarted" in after

    _wait_for(restarted, 60, f"{name} restarted after kill -9")
    return killed


def test_clean_start_leaves_no_fatal_line_in_postgres_log(supervised: Supervised) -> None:
    log = supervised.postgres_log_at_start
    assert "database system is ready to accept connections" in log
    assert "FATAL" not in log, log


@pytest.mark.parametrize("name", SERVICES)
def test_killed_service_is_restarted_and_readyz_turns_green_by_itself(
    supervised: Supervised, name: str
) -> None:
    stack = supervised.stack
    killed = _kill_and_wait_for_restart(stack, name)

    replacement = stack.services[name]
    assert replacement.pid != killed and replacement.running()
    assert f"{name} (pid {killed}) exited with signal 9" in _supervisor_log(stack)
    _wait_for(lambda: _get(stack, "/readyz")[0] == 200, 30, "/readyz green again")
    status, body = _get(stack, "/readyz")
    assert status == 200 and set(body["dependencies"].values()) == {"ok"}, body
    # And the API answers through the restarted service.
    status, body = _get(stack, "/api/v1/locations?limit=1", supervised.business_key)
    assert status == 200, body


def test_a_service_that_keeps_dying_is_restarted_with_growing_delays(
    supervised: Supervised,
) -> None:
    stack, name = supervised.stack, "notify-service"
    for _ in range(3):
        _kill_and_wait_for_restart(stack, name)

    exits = re.findall(
        rf"{name} \(pid \d+\) exited .*?restarting in ([\d.]+) s", _supervisor_log(stack)
    )
    first, second, third = (float(delay) for delay in exits[-3:])
    assert second == 2 * first and third == 2 * second, exits
    _wait_for(lambda: _get(stack, "/readyz")[0] == 200, 30, "/readyz green again")
