"""What the benchmark (bench/run.py) runs on: a throw-away stack set up as `make run`'s."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from calendence.devstack.stack import RUN_SERVICE_ENV, LocalStack

# PostgreSQL counts the statements it runs (pg_stat_statements), so that a bench can say
# how many each request costs: a figure that does not swing with the machine's load.
COUNTING_STATEMENTS = ("shared_preload_libraries=pg_stat_statements",)
# As production runs PostgreSQL: each commit waits for its WAL to reach the disk
# (`make run` turns that off, a development stack needs no durability).
DURABLE = ("fsync=on",)


@contextmanager
def throwaway_stack(
    keep: bool = False, replicas: int = 1, durable: bool = False
) -> Iterator[LocalStack]:
    """The stores and four services (`replicas` processes of each) with `make run`'s
    settings (Redis appending to its log included), PostgreSQL counting statements (and
    with `durable`, flushing each commit to the disk), in a temporary folder that is
    removed afterwards unless `keep`."""
    state_dir = Path(tempfile.mkdtemp(prefix="calendence-bench-"))
    stack = LocalStack(
        state_dir,
        persist=True,
        service_env=dict(RUN_SERVICE_ENV),
        replicas=replicas,
        postgres_settings=COUNTING_STATEMENTS + (DURABLE if durable else ()),
    )
    print(f"starting the stack in {state_dir} ...", flush=True)
    # A bench stopped with SIGTERM (`kill`, a CI job's timeout) stops its stack in order
    # and removes its folder as at its end, instead of leaving hundreds of megabytes of
    # Redis log and PostgreSQL data behind.
    previous_handler = signal.getsignal(signal.SIGTERM)
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        if not keep:
            shutil.rmtree(state_dir, ignore_errors=True)
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Leave as an ordinary exit (SystemExit), so that `throwaway_stack` cleans up."""
    sys.exit(128 + signum)
