"""Child processes that die with their parent and stop in order."""

from __future__ import annotations

import ctypes
import fcntl
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

_PR_SET_PDEATHSIG = 1


# Ports below the kernel's ephemeral range, which outgoing connections take their
# source ports from: a port handed out here is never one a client connection (another
# lane's, another stack's) holds, and a probe can never connect to itself.
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10000
# Redis Cluster nodes listen on their port plus 10000 too: that one must stay below the
# ephemeral range as well.
_HIGHEST_OFFSET = 10000
_STANDARD_PORTS = frozenset({5432, 6379, 4222, 8080})
# One lock file per port handed out, held while this process lives: two stacks started
# at once on one machine (the suite's two lanes) never pick the same port.
_LOCK_DIR = Path(tempfile.gettempdir()) / "calendence-ports"
_held_ports: dict[int, int] = {}


def free_port() -> int:
    """A port nobody listens on now and no other stack of this machine holds (never one
    of the standard store ports); reserved for this process's life."""
    highest = _ephemeral_low() - 1 - _HIGHEST_OFFSET
    while True:
        port = random.randint(_LOWEST_PORT, highest)
        if port not in _STANDARD_PORTS and reserve_port(port):
            return port


def reserve_port(port: int) -> bool:
    """Hold `port` for this process if it is free and no other process holds it."""
    if port in _held_ports or not _bindable(port):
        return False
    _LOCK_DIR.mkdir(mode=0o1777, exist_ok=True)
    descriptor = os.open(_LOCK_DIR / f"{port}.lock", os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return False
    _held_ports[port] = descriptor
    return True


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def wait_for_port(port: int, timeout: float, process: ManagedProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited early; see {process.log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class Node(Protocol):
    """One server of a local cluster."""

    def start(self) -> None: ...


def start_cluster(
    nodes: Sequence[Node], ready: Callable[[], None], stop: Callable[[], None]
) -> None:
    """Start every node, then `ready()` (until the nodes work as one cluster); on any
    failure, `stop()` (which passes over nodes never started) and raise again."""
    try:
        for node in nodes:
            node.start()
        ready()
    except BaseException:
        stop()
        raise


class ManagedProcess:
    """A child whose output goes to a log file and which the kernel kills if we die."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            list(argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            user=user,
            cwd=cwd,
            # Own process group: a terminal's Ctrl-C reaches only the stack runner,
            # which then stops the children in order.
            start_new_session=True,
            preexec_fn=lambda: _die_with_parent(stop_signal),
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.running():
            self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.running():
            self.popen.kill()
            self.popen.wait()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP for the block, then SIGCONT: the process keeps its connections open
        and answers nothing, as a hung machine does."""
        os.kill(self.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.pid, signal.SIGCONT)


def _die_with_parent(sig: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)
    # The parent may already be gone between fork and prctl.
    if os.getppid() == 1:
        os.kill(os.getpid(), sig)
