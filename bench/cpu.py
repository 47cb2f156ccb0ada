"""CPU time of named process trees, from /proc/<pid>/stat, and the time their threads
waited for a core and how often they were put on one, from
/proc/<pid>/task/<tid>/schedstat.

A tree's CPU time is the sum over its live processes of utime + stime + cutime +
cstime: a process that exits moves its time into its parent's cutime/cstime, so
PostgreSQL's backends (children of the postmaster) count whether they live through a
phase or not. Waiting has no such carry-over: it is counted per thread, and a thread
that ends during a phase takes its count with it (the services' and stores' threads
live through the phases; a PostgreSQL autovacuum worker may not).
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


def _thread_schedules(pid: int) -> dict[int, tuple[int, int]]:
    """Thread id -> (nanoseconds it has spent runnable but waiting for a core, times it
    was put on a core)."""
    schedules: dict[int, tuple[int, int]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return schedules  # gone meanwhile
    for task in tasks:
        try:
            _, waited, runs = (task / "schedstat").read_text().split()[:3]
            schedules[int(task.name)] = (int(waited), int(runs))
        except (OSError, ValueError):
            continue
    return schedules


Schedules = dict[str, dict[int, tuple[int, int]]]


def thread_schedules(roots: dict[str, int]) -> Schedules:
    """For each named process tree, each live thread's wait for a core so far (ns) and
    the times it was put on one."""
    return {
        name: {tid: seen for pid in pids for tid, seen in _thread_schedules(pid).items()}
        for name, pids in _trees(roots, _all_processes()).items()
    }


def waited_between(before: Schedules, after: Schedules) -> dict[str, float]:
    """Seconds each tree's threads waited for a core between two readings: what a busy
    machine adds to each hop of a request. A thread born meanwhile counts all of its
    wait; one that ended meanwhile is not counted."""
    return _between(before, after, 0, 1e9)


def runs_between(before: Schedules, after: Schedules) -> dict[str, float]:
    """Times each tree's threads were put on a core between two readings: a thread runs
    once per wake-up (a message arrived, a timer fired) and again when its time slice
    ran out, so this counts the wake-ups a unit of work costs. Counted as waits are."""
    return _between(before, after, 1, 1)


def _between(before: Schedules, after: Schedules, field: int, unit: float) -> dict[str, float]:
    return {
        name: sum(
            seen[field] - before.get(name, {}).get(tid, (0, 0))[field]
            for tid, seen in threads.items()
        )
        / unit
        for name, threads in after.items()
    }


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}
