"""Ports for local stacks: two stacks started at once on one machine never share one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from calendence.devstack.processes import free_port, reserve_port

_HOLD_PORTS = """
import sys
from calendence.devstack.processes import free_port
print(" ".join(str(free_port()) for _ in range(50)), flush=True)
sys.stdin.read()  # hold them until told to go
"""


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_a_free_port_and_its_cluster_bus_port_lie_below_the_ephemeral_range() -> None:
    # Client connections take their source ports from the ephemeral range: a port
    # handed out below it is never one a connection of another stack already holds.
    ports = [free_port() for _ in range(20)]
    assert all(port + 10000 < _ephemeral_low() for port in ports)
    assert len(set(ports)) == len(ports)


def test_a_port_another_process_holds_is_never_handed_out() -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", _HOLD_PORTS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None
        held = [int(port) for port in other.stdout.readline().split()]
        assert len(held) == 50
        assert not any(reserve_port(port) for port in held)
        assert not set(free_port() for _ in range(200)) & set(held)
    finally:
        other.communicate("")


def test_a_port_is_free_again_once_its_holder_exits() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _HOLD_PORTS], input="", capture_output=True, text=True, check=True
    )
    port = int(done.stdout.split()[0])
    assert reserve_port(port)
