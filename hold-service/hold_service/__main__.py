"""`calendence-hold-service`: serve holds over gRPC until SIGTERM."""

from __future__ import annotations

from calendence.entrypoint import run_service
from calendence.settings import HoldServiceSettings

from hold_service.server import serve


def main() -> None:
    run_service("hold-service", HoldServiceSettings(), serve)


if __name__ == "__main__":
    main()
