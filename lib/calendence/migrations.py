"""Versioned SQL migrations: files `NNNN_name.sql`, applied once each, in order.

The one way to migrate is the `calendence-migrate` command (`python -m
calendence.migrations`): the local stack runs it before it starts the services,
docker compose as its one-shot `migrate` service, Kubernetes as the
`calendence-migrate` Job. Services never migrate; at start they check that their
database holds every migration they ship (`require_schema`) and refuse to serve an
older one, so a failed or forgotten migration stops a rollout instead of breaking it.

Applied versions are recorded per service in `schema_migrations` (so two services may
share a database without sharing history); a transaction-scoped advisory lock
serialises two runs, so running twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import asyncpg

from calendence.logs import configure_logging, log_fields
from calendence.settings import BookingServiceSettings, CommonSettings, NotifyServiceSettings

log = logging.getLogger("calendence.migrations")

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x63616C656E  # any constant shared by every migrating process


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    """Migrations shipped as `<package>/migrations/*.sql`, sorted by version."""
    folder: Traversable = resources.files(package) / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {package}")
    return found


async def apply_migrations(
    connection: asyncpg.Connection, service: str, migrations: list[Migration]
) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied now."""
    applied_now: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await connection.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                service    text NOT NULL,
                version    integer NOT NULL,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (service, version)
            )
            """
        )
        done = {
            r["version"]
            for r in await connection.fetch(
                "SELECT version FROM schema_migrations WHERE service = $1", service
            )
        }
        for migration in migrations:
            if migration.version in done:
                continue
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (service, version, name) VALUES ($1, $2, $3)",
                service,
                migration.version,
                migration.name,
            )
            applied_now.append(migration.version)
            log.info(
                "migration applied",
                extra=log_fields(service=service, version=migration.version, name=migration.name),
            )
    return applied_now


async def migrate(dsn: str, package: str) -> list[int]:
    """Bring the database at `dsn` to every migration `package` ships."""
    connection = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(connection, package, load_migrations(package))
    finally:
        await connection.close()


def database_urls() -> dict[str, str]:
    """The database each service with migrations owns, by package, in migration order,
    read from the same variables the services read (DATABASE_URL, NOTIFY_DATABASE_URL)."""
    return {
        "booking_service": BookingServiceSettings().database_url,
        "notify_service": NotifyServiceSettings().notify_database_url,
    }


async def migrate_all() -> None:
    for package, dsn in database_urls().items():
        await migrate(dsn, package)


def missing_versions(shipped: set[int], applied: set[int]) -> list[int]:
    """What a database lacks of the code's migrations; newer ones it holds (applied
    ahead of a rolling upgrade) do not matter."""
    return sorted(shipped - applied)


async def applied_versions(connection: asyncpg.Connection, package: str) -> set[int]:
    try:
        rows = await connection.fetch(
            "SELECT version FROM schema_migrations WHERE service = $1", package
        )
    except asyncpg.UndefinedTableError:
        return set()  # never migrated
    return {int(row["version"]) for row in rows}


class SchemaBehind(Exception):
    """The database lacks migrations this code needs: `calendence-migrate` has not run."""

    def __init__(self, package: str, missing: list[int]) -> None:
        super().__init__(f"{package}: migrations {missing} not applied")
        self.package = package
        self.missing = missing


async def require_schema(connection: asyncpg.Connection, package: str) -> None:
    """Raise SchemaBehind unless the database holds every migration `package` ships."""
    shipped = {m.version for m in load_migrations(package)}
    missing = missing_versions(shipped, await applied_versions(connection, package))
    if missing:
        raise SchemaBehind(package, missing)


def main() -> None:
    """`calendence-migrate`: migrate every service's database, then exit."""
    configure_logging("migrate", CommonSettings().log_level)
    if len(sys.argv) > 1:
        sys.exit(f"calendence-migrate takes no arguments (got {sys.argv[1:]})")
    asyncio.run(migrate_all())
    log.info("schema up to date", extra=log_fields(databases=sorted(database_urls())))


if __name__ == "__main__":
    main()
