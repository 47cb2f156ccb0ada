"""Wait until the migration job has brought a service's database to this image's schema.

    python /opt/calendence/wait_for_migrations.py booking-service|notify-service

Kubernetes has no "start after that Job" for a Deployment, so booking-service and
notify-service pods run this as an init container: it exits 0 once every migration
shipped in the image is recorded in `schema_migrations`, and 1 after
WAIT_FOR_MIGRATIONS_SECONDS (then the pod restarts it and says why). A pod of a new
version thus never serves a schema the job has not applied, and when the job fails the
rollout stops while the old pods keep serving. (docker compose waits with
`depends_on: condition: service_completed_successfully` instead.)
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import asyncpg
from calendence.migrations import (
    applied_versions,
    database_urls,
    load_migrations,
    missing_versions,
)

# Each service with a database: its migrations package (calendence-migrate's name).
SERVICES = {"booking-service": "booking_service", "notify-service": "notify_service"}
POLL_SECONDS = 2.0


async def database_versions(dsn: str, package: str) -> set[int]:
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        return await applied_versions(connection, package)
    finally:
        await connection.close()


async def wait(service: str, timeout: float) -> bool:
    package = SERVICES[service]
    dsn = database_urls()[package]
    shipped = {m.version for m in load_migrations(package)}
    deadline = time.monotonic() + timeout
    reason = ""
    while True:
        try:
            missing = missing_versions(shipped, await database_versions(dsn, package))
            if not missing:
                print(f"{service}: schema is up to date", file=sys.stderr)
                return True
            reason = f"migrations {missing} not applied yet"
        except Exception as error:  # unreachable or still starting: keep waiting
            reason = f"database unreachable: {error!r}"
        if time.monotonic() >= deadline:
            print(f"{service}: gave up after {timeout:.0f}s: {reason}", file=sys.stderr)
            return False
        print(f"{service}: waiting for the migration job: {reason}", file=sys.stderr)
        await asyncio.sleep(POLL_SECONDS)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in SERVICES:
        print(__doc__, file=sys.stderr)
        return 2
    timeout = float(os.environ.get("WAIT_FOR_MIGRATIONS_SECONDS", "600"))
    return 0 if asyncio.run(wait(argv[1], timeout)) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
