"""`calendence-booking-service [serve]`: serve bookings over gRPC until SIGTERM."""

from __future__ import annotations

from calendence.entrypoint import run_service
from calendence.settings import BookingServiceSettings

from booking_service.server import serve


def main() -> None:
    run_service("booking-service", BookingServiceSettings(), serve)


if __name__ == "__main__":
    main()
