"""What the benchmark (bench/run.py) runs on: a throw-away stack set up as `make run`'s."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calendence.devstack.stack import RUN_SERVICE_ENV, LocalStack

# PostgreSQL counts the statements it runs (pg_stat_statements), so that a bench can say
# how many each request costs: a figure that does not swing with the machine's load.
COUNTING_STATEMENTS = ("shared_preload_libraries=pg_stat_statements",)


@contextmanager
def throwaway_stack(keep: bool = False, replicas: int = 1) -> Iterator[LocalStack]:
    """The stores and four services (`replicas` processes of each) with `make run`'s
    settings (Redis appending to its log included), PostgreSQL counting statements, in
    a temporary folder that is removed afterwards unless `keep`."""
    state_dir = Path(tempfile.mkdtemp(prefix="calendence-bench-"))
    stack = LocalStack(
        state_dir,
        persist=True,
        service_env=dict(RUN_SERVICE_ENV),
        replicas=replicas,
        postgres_settings=COUNTING_STATEMENTS,
    )
    print(f"starting the stack in {state_dir} ...", flush=True)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        if not keep:
            shutil.rmtree(state_dir, ignore_errors=True)
