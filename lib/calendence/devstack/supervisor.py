"""Keeps the local stack's services running: one that exits unexpectedly is restarted.

A service found dead is started again on the same port after a delay that doubles with
each restart in a row (`first_delay_seconds`, then twice that, up to
`max_delay_seconds`), so a service that cannot start does not spin; once a service has
stayed up for `steady_after_seconds` the delay starts again from the first. Every exit
and restart is written to `<state>/logs/supervisor.log` and to stderr.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from calendence.devstack.processes import ManagedProcess


def restart_delay(restarts_in_a_row: int, first: float, most: float) -> float:
    """Seconds to wait before the next restart of a service that keeps exiting."""
    return float(min(most, first * 2 ** max(0, restarts_in_a_row)))


@dataclass
class _Watch:
    started_at: float
    restarts_in_a_row: int = 0
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Watches `services` (name -> process) and calls `restart(name)` for a dead one.

    `restart` starts the service again, waits until it listens, and puts the new
    process into `services`; an exception from it counts as one more failed start.
    `on_restart`, if given, hears of each process that took over.
    """

    services: dict[str, ManagedProcess]
    restart: Callable[[str], ManagedProcess]
    log_path: Path
    on_restart: Callable[[str, ManagedProcess], None] | None = None
    first_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    steady_after_seconds: float = 60.0
    poll_seconds: float = 0.2
    _watches: dict[str, _Watch] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        now = time.monotonic()
        self._watches = {name: _Watch(started_at=now) for name in self.services}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the services are stopped on purpose).

        The services it restarted were started from its thread, and the kernel sends
        them their stop signal when that thread ends (PR_SET_PDEATHSIG follows the
        thread that forked): the same stop that the stack is about to make anyway.
        """
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def _log(self, line: str) -> None:
        stamped = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} supervisor: {line}"
        print(stamped, file=sys.stderr, flush=True)
        with open(self.log_path, "a") as log:
            log.write(stamped + "\n")

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_seconds):
            for name, watch in self._watches.items():
                if self._stopping.is_set():
                    return
                self._check(name, watch)

    def _check(self, name: str, watch: _Watch) -> None:
        process = self.services[name]
        now = time.monotonic()
        if watch.restart_at is None:
            if process.running():
                if now - watch.started_at >= self.steady_after_seconds:
                    watch.restarts_in_a_row = 0
                return
            delay = restart_delay(
                watch.restarts_in_a_row, self.first_delay_seconds, self.max_delay_seconds
            )
            watch.restart_at = now + delay
            self._log(
                f"{name} (pid {process.pid}) exited with {_exit_reason(process)}; "
                f"restarting in {delay:g} s (restart {watch.restarts_in_a_row + 1} in a row)"
            )
            return
        if now < watch.restart_at:
            return
        watch.restart_at = None
        watch.restarts_in_a_row += 1
        watch.started_at = time.monotonic()
        try:
            started = self.restart(name)
        except Exception as error:
            # The dead process stays in `services`: the next poll schedules another try.
            self._log(f"{name} failed to start again: {error}")
            return
        self._log(f"{name} restarted (pid {started.pid})")
        if self.on_restart is not None:
            self.on_restart(name, started)


def _exit_reason(process: ManagedProcess) -> str:
    code = process.popen.returncode
    return f"signal {-code}" if code is not None and code < 0 else f"code {code}"
