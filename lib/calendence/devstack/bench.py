"""What the benchmark (bench/run.py) runs on: a throw-away stack set up as `make run`'s."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calendence.devstack.stack import RUN_SERVICE_ENV, LocalStack


@contextmanager
def throwaway_stack(keep: bool = False, replicas: int = 1) -> Iterator[LocalStack]:
    """The stores and four services (`replicas` processes of each) with `make run`'s
    settings (Redis appending to its log included), in a temporary folder that is
    removed afterwards unless `keep`."""
    state_dir = Path(tempfile.mkdtemp(prefix="calendence-bench-"))
    stack = LocalStack(
        state_dir, persist=True, service_env=dict(RUN_SERVICE_ENV), replicas=replicas
    )
    print(f"starting the stack in {state_dir} ...", flush=True)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        if not keep:
            shutil.rmtree(state_dir, ignore_errors=True)
