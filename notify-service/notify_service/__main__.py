"""`calendence-notify-service [serve]`: deliver webhooks and emails until SIGTERM."""

from __future__ import annotations

from calendence.entrypoint import run_service
from calendence.settings import NotifyServiceSettings

from notify_service.server import serve


def main() -> None:
    run_service("notify-service", NotifyServiceSettings(), serve)


if __name__ == "__main__":
    main()
