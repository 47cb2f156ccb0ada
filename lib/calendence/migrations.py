"""Versioned SQL migrations: files `NNNN_name.sql`, applied once each, in order.

Applied versions are recorded per service in `schema_migrations` (so two services may
share a database without sharing history); a transaction-scoped advisory lock
serialises replicas that start together, so running twice changes nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import asyncpg

from calendence.logs import log_fields

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
    connection = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(connection, package, load_migrations(package))
    finally:
        await connection.close()
