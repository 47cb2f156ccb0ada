"""`calendence-stack` (what `make run` runs): the whole platform on this machine.

Starts PostgreSQL, Redis and NATS from pip-installed servers unless DATABASE_URL,
REDIS_URL and NATS_URL point elsewhere (`--cluster`: a NATS cluster and a Redis
Cluster); then the four services (`--replicas N` processes of each), restarting any
that exits unexpectedly (see calendence.devstack.supervisor). Prints the gateway URLs
and demo keys, and writes them and every pid to <state>/stack.json. Ctrl-C stops
everything it began.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from calendence.devstack.processes import ManagedProcess
from calendence.devstack.stack import RUN_SERVICE_ENV, LocalStack


def _keys_still_work(gateway_url: str, demo: dict[str, Any]) -> bool:
    request = urllib.request.Request(
        f"{gateway_url}/api/v1/locations?limit=1",
        headers={"Authorization": f"Bearer {demo.get('business_key', '')}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(prog="calendence-stack", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("CALENDENCE_STATE_DIR", ".calendence")),
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=int(os.environ.get("REPLICAS") or 1),
        help="processes of each service, each on its own port (default 1; env REPLICAS)",
    )
    parser.add_argument(
        "--cluster",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("CLUSTER", "").lower() in {"1", "true", "yes"},
        help="a three-node NATS cluster and a Redis Cluster instead of one server each "
        "(env CLUSTER=1)",
    )
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    state_dir: Path = args.state_dir.resolve()
    stack_file = state_dir / "stack.json"
    previous = json.loads(stack_file.read_text()) if stack_file.exists() else {}

    info: dict[str, Any] = {}
    info_lock = threading.Lock()  # the supervisor's thread rewrites it too

    def write_info() -> None:
        # Whole or not at all, for a script reading it meanwhile.
        partial = stack_file.with_suffix(".json.partial")
        partial.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(partial, stack_file)

    def note_restart(name: str, process: ManagedProcess) -> None:
        """Keep stack.json's pids those of the running services."""
        with info_lock:
            if info:
                info["services"][name] = process.pid
                write_info()

    stack = LocalStack(
        state_dir,
        service_env=RUN_SERVICE_ENV,
        supervise=True,
        on_restart=note_restart,
        replicas=args.replicas,
        nats_cluster=args.cluster,
        redis_cluster=args.cluster,
    )

    def request_stop(*_: object) -> None:
        raise KeyboardInterrupt

    # SIGINT explicitly too: a shell starting us in the background ignores it otherwise.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, request_stop)
    try:
        print(f"starting Calendence (state in {state_dir}) ...", flush=True)
        stack.start()
        demo = previous.get("demo") or {}
        if not _keys_still_work(stack.gateway_url, demo):
            demo = stack.admin("demo")
        with info_lock:
            info |= stack.describe() | {"demo": demo}
            write_info()
            print(json.dumps(info, indent=2))
        if stack.mailbox:
            print(f"\nClient emails land in {stack.mailbox} (one .eml file each)")
        gateways = "  ".join(stack.gateway_urls)
        print(f"\nCalendence is up at {gateways}  (Ctrl-C stops it)", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping ...", file=sys.stderr, flush=True)
        stack.stop()
        print("stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
