"""`calendence-booking-service [serve|migrate]` (serve is the default)."""

from __future__ import annotations

from calendence.entrypoint import run_service
from calendence.settings import BookingServiceSettings

from booking_service.server import serve


def main() -> None:
    settings = BookingServiceSettings()
    run_service(
        "booking-service", settings, serve, migrations=(settings.database_url, "booking_service")
    )


if __name__ == "__main__":
    main()
