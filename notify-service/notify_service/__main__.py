"""`calendence-notify-service [serve|migrate]` (serve is the default)."""

from __future__ import annotations

from calendence.entrypoint import run_service
from calendence.settings import NotifyServiceSettings

from notify_service.server import serve


def main() -> None:
    settings = NotifyServiceSettings()
    run_service(
        "notify-service",
        settings,
        serve,
        migrations=(settings.notify_database_url, "notify_service"),
    )


if __name__ == "__main__":
    main()
