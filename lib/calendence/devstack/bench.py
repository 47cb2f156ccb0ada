"""What every benchmark in bench/ does around its measurements: a throw-away stack."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from calendence.devstack.stack import LocalStack

Benchmark = Callable[[LocalStack], Coroutine[None, None, dict[str, Any]]]


def run_on_fresh_stack(
    name: str, service_env: dict[str, str], benchmark: Benchmark, results_dir: Path
) -> Path:
    """Start a stack in a temporary folder, run `benchmark` on it (under uvloop), stop
    the stack, and write what it returned to `results_dir/<name>-<time>.json`."""
    state_dir = Path(tempfile.mkdtemp(prefix="calendence-bench-"))
    stack = LocalStack(state_dir, persist=False, service_env=service_env)
    print(f"starting the stack in {state_dir} ...", flush=True)
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.2f} before starting; other work skews the figures")
    try:
        stack.start()
        results = uvloop.run(benchmark(stack))
    finally:
        stack.stop()
    out = results_dir / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"load_average_at_start": load, **results}, indent=2) + "\n")
    print(f"written to {out}")
    return out
