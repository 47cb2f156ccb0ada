"""The command line every service shares: `serve` (the default) or `migrate`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from typing import TypeVar

import uvloop

from calendence.logs import configure_logging
from calendence.migrations import migrate
from calendence.settings import CommonSettings

Settings = TypeVar("Settings", bound=CommonSettings)


def run_service(
    name: str,
    settings: Settings,
    serve: Callable[[Settings], Coroutine[None, None, None]],
    *,
    migrations: tuple[str, str] | None = None,
) -> None:
    """Run a service until SIGTERM; `migrations` is (database URL, package) if it has any."""
    configure_logging(
        name,
        settings.log_level,
        slow_request_ms=settings.slow_request_ms,
        access_log_sample_rate=settings.access_log_sample_rate,
    )
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command == "serve":
        uvloop.run(serve(settings))
    elif command == "migrate" and migrations is not None:
        uvloop.run(migrate(*migrations))
    else:
        usage = "serve or migrate" if migrations else "serve"
        sys.exit(f"{name}: unknown command {command!r}; use {usage}")
