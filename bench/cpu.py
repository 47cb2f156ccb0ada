"""CPU time of named process trees, from /proc/<pid>/stat.

A tree's time is the sum over its live processes of utime + stime + cutime + cstime: a
process that exits moves its time into its parent's cutime/cstime, so PostgreSQL's
backends (children of the postmaster) count whether they live through a phase or not.
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


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and its descendants; this process
    (the benchmark, parent of the whole stack and of wrk) counts only its own."""
    processes = _all_processes()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (parent, _, _) in processes.items():
        children[parent].append(pid)
    totals: dict[str, float] = {}
    for name, root in roots.items():
        if root == os.getpid():
            totals[name] = processes[root][1] / TICKS_PER_SECOND if root in processes else 0.0
            continue
        ticks, todo = 0, [root]
        while todo:
            pid = todo.pop()
            if pid in processes:
                ticks += processes[pid][1] + processes[pid][2]
                todo.extend(children.get(pid, ()))
        totals[name] = ticks / TICKS_PER_SECOND
    return totals


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}
