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

# The database each service owns: (settings class, its URL field, migrations package).
SERVICES = {
    "booking-service": ("BookingServiceSettings", "database_url", "booking_service"),
    "notify-service": ("NotifyServiceSettings", "notify_database_url", "notify_service"),
}
POLL_SECONDS = 2.0


def missing_versions(shipped: set[int], applied: set[int]) -> list[int]:
    return sorted(shipped - applied)


async def applied_versions(dsn: str, package: str) -> set[int]:
    import asyncpg

    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await connection.fetch(
            "SELECT version FROM schema_migrations WHERE service = $1", package
        )
    except asyncpg.UndefinedTableError:
        return set()  # the job has not created the table yet
    finally:
        await connection.close()
    return {int(row["version"]) for row in rows}


async def wait(service: str, timeout: float) -> bool:
    from calendence import settings as settings_module
    from calendence.migrations import load_migrations

    class_name, field, package = SERVICES[service]
    dsn = str(getattr(getattr(settings_module, class_name)(), field))
    shipped = {m.version for m in load_migrations(package)}
    deadline = time.monotonic() + timeout
    reason = ""
    while True:
        try:
            missing = missing_versions(shipped, await applied_versions(dsn, package))
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
