"""`calendence-notify-service [serve|migrate]` (serve is the default)."""

from __future__ import annotations

import sys

import uvloop
from calendence.logs import configure_logging
from calendence.migrations import migrate
from calendence.settings import NotifyServiceSettings


def main() -> None:
    settings = NotifyServiceSettings()
    configure_logging("notify-service", settings.log_level)
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command == "migrate":
        uvloop.run(migrate(settings.notify_database_url, "notify_service"))
    elif command == "serve":
        from notify_service.server import serve

        uvloop.run(serve(settings))
    else:
        sys.exit(f"unknown command {command!r}; use serve or migrate")


if __name__ == "__main__":
    main()
