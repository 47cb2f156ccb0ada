"""CPU time of named process trees, from /proc/<pid>/stat, and the time their threads
waited for a core, from /proc/<pid>/task/<tid>/schedstat.

A tree's CPU time is the sum over its live processes of utime + stime + cutime +
cstime: a process that exits moves its time into its parent's cutime/cstime, so
PostgreSQL's backends (children of the postmaster) count whether they live through a
phase or not. Waiting has no such carry-over: a thread that exits takes its count with
it, which the services' and stores' long-lived threads do not.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _all_processes() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, its own ticks, ticks of its waited-for children)."""
    found: dict[int, tuple[int, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = raw[raw.rindex(")") + 2 :].split()
        parent = int(fields[1])
        utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
        found[int(entry.name)] = (parent, utime + stime, cutime + cstime)
    return found


def _trees(
    roots: dict[str, int], processes: dict[int, tuple[int, int, int]]
) -> dict[str, list[int]]:
    """The live pids of each named process and its descendants; this process (the
    benchmark, parent of the whole stack and of wrk) is its own alone."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (parent, _, _) in processes.items():
        children[parent].append(pid)
    trees: dict[str, list[int]] = {}
    for name, root in roots.items():
        if root == os.getpid():
            trees[name] = [root] if root in processes else []
            continue
        found, todo = [], [root]
        while todo:
            pid = todo.pop()
            if pid in processes:
                found.append(pid)
                todo.extend(children.get(pid, ()))
        trees[name] = found
    return trees


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and its descendants (this process:
    its own, not its children's, which are the others)."""
    processes = _all_processes()
    return {
        name: sum(
            processes[pid][1] + (processes[pid][2] if pid != os.getpid() else 0) for pid in pids
        )
        / TICKS_PER_SECOND
        for name, pids in _trees(roots, processes).items()
    }


def _waited_ns(pid: int) -> int:
    waited = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0  # gone meanwhile
    for task in tasks:
        try:
            waited += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return waited


def waited_seconds(roots: dict[str, int]) -> dict[str, float]:
    """Seconds the threads of each named process tree have spent runnable but waiting
    for a core so far: what a busy machine adds to each hop of a request."""
    return {
        name: sum(_waited_ns(pid) for pid in pids) / 1e9
        for name, pids in _trees(roots, _all_processes()).items()
    }


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}
