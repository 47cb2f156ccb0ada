"""`make run` keeps its services running: one killed with SIGKILL comes back by itself.

These tests run `calendence-stack` (what `make run` runs) as a process of its own, with
its own stores and state folder, and kill its services as a crash would. The session's
stack is not supervised: other tests stop and start its services themselves.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from calendence.devstack.processes import ManagedProcess
from calendence.devstack.stack import SERVICES

# Starting four services, three stores and the demo data on a busy 2-core machine.
START_SECONDS = 180


@dataclass
class MakeRun:
    process: ManagedProcess
    state_dir: Path
    gateway_url: str
    business_key: str
    postgres_log_at_start: str

    def stack_json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.state_dir / "stack.json").read_text())
        return document

    def pid(self, service: str) -> int:
        return int(self.stack_json()["services"][service])

    def supervisor_log(self) -> str:
        path = self.state_dir / "logs" / "supervisor.log"
        return path.read_text() if path.exists() else ""


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    state_dir = tmp_path_factory.mktemp("make-run")
    env = {key: value for key, value in os.environ.items() if not key.endswith("_URL")}
    process = ManagedProcess(
        "calendence-stack",
        [sys.executable, "-m", "calendence.devstack", "--state-dir", str(state_dir)],
        state_dir / "calendence-stack.log",
        env=env,
        stop_signal=signal.SIGINT,  # Ctrl-C
    )
    try:
        _wait_for(
            lambda: (state_dir / "stack.json").exists() or not process.running(),
            START_SECONDS,
            "calendence-stack wrote stack.json",
        )
        assert process.running(), (state_dir / "calendence-stack.log").read_text()
        info = json.loads((state_dir / "stack.json").read_text())
        yield MakeRun(
            process,
            state_dir,
            info["gateway_url"],
            info["demo"]["business_key"],
            (state_dir / "logs" / "postgres.log").read_text(),
        )
    finally:
        process.stop(timeout=60)


def _get(url: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=3) as a:
            return a.status, json.load(a)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError as error:
        return 0, str(error)


def _kill_and_wait_for_restart(stack: MakeRun, name: str) -> int:
    """SIGKILL the service as a crash would; returns the pid killed."""
    killed = stack.pid(name)
    os.kill(killed, signal.SIGKILL)

    def restarted() -> bool:
        _, exited, after = stack.supervisor_log().partition(f"{name} (pid {killed}) exited")
        return bool(exited) and f"{name} restarted" in after

    _wait_for(restarted, 60, f"{name} restarted after kill -9")
    # stack.json is rewritten after the restart is logged: a kill right after this must
    # find the new pid there, not the one just killed.
    _wait_for(lambda: stack.pid(name) != killed, 10, "stack.json names the new pid")
    return killed


def test_a_clean_start_leaves_no_fatal_line_in_postgres_log(make_run: MakeRun) -> None:
    log = make_run.postgres_log_at_start
    assert "database system is ready to accept connections" in log
    assert "FATAL" not in log, log


@pytest.mark.parametrize("name", SERVICES)
def test_a_killed_service_is_restarted_and_readyz_turns_green_by_itself(
    make_run: MakeRun, name: str
) -> None:
    killed = _kill_and_wait_for_restart(make_run, name)

    assert f"{name} (pid {killed}) exited with signal 9" in make_run.supervisor_log()
    _wait_for(lambda: _get(make_run.gateway_url + "/readyz")[0] == 200, 60, "/readyz green")
    status, body = _get(make_run.gateway_url + "/readyz")
    assert status == 200 and set(body["dependencies"].values()) == {"ok"}, body
    # stack.json names the process that took over, and the API answers through it.
    _wait_for(lambda: make_run.pid(name) != killed, 10, "stack.json names the new pid")
    os.kill(make_run.pid(name), 0)  # it runs
    status, body = _get(make_run.gateway_url + "/api/v1/locations?limit=1", make_run.business_key)
    assert status == 200, body


def test_a_service_that_keeps_dying_is_restarted_with_growing_delays(make_run: MakeRun) -> None:
    name = "notify-service"
    for _ in range(3):
        _kill_and_wait_for_restart(make_run, name)

    exits = re.findall(
        rf"{name} \(pid \d+\) exited .*?restarting in ([\d.]+) s", make_run.supervisor_log()
    )
    first, second, third = (float(delay) for delay in exits[-3:])
    assert second == 2 * first and third == 2 * second, exits
    _wait_for(lambda: _get(make_run.gateway_url + "/readyz")[0] == 200, 60, "/readyz green")


def test_ctrl_c_stops_the_stack_and_every_restarted_service(make_run: MakeRun) -> None:
    pids = list(make_run.stack_json()["services"].values())
    make_run.process.stop(timeout=60)

    assert make_run.process.popen.returncode == 0
    _wait_for(lambda: not any(_alive(pid) for pid in pids), 10, f"services {pids} gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
