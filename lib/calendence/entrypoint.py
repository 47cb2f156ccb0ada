"""The command line every service shares: `serve` (the default and only command)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Coroutine
from typing import TypeVar

import uvloop

from calendence.logs import configure_logging, log_fields
from calendence.migrations import SchemaBehind
from calendence.settings import CommonSettings

Settings = TypeVar("Settings", bound=CommonSettings)

log = logging.getLogger("calendence.entrypoint")

# The exit status of a service that refused to serve an older schema.
SCHEMA_BEHIND_EXIT = 3


def run_service(
    name: str,
    settings: Settings,
    serve: Callable[[Settings], Coroutine[None, None, None]],
) -> None:
    """Run a service until SIGTERM. Migrating is `calendence-migrate`'s job: a service
    whose database lacks migrations it ships says so and exits instead of serving."""
    configure_logging(
        name,
        settings.log_level,
        slow_request_ms=settings.slow_request_ms,
        access_log_sample_rate=settings.access_log_sample_rate,
    )
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command != "serve":
        sys.exit(f"{name}: unknown command {command!r}; use serve (migrate: calendence-migrate)")
    try:
        uvloop.run(serve(settings))
    except SchemaBehind as behind:
        log.error(
            "database schema is older than this code: run calendence-migrate first",
            extra=log_fields(schema=behind.package, missing_migrations=behind.missing),
        )
        sys.exit(SCHEMA_BEHIND_EXIT)
