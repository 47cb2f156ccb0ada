"""`calendence-gateway`: serve the public REST API until SIGTERM."""

from __future__ import annotations

from calendence.entrypoint import run_service
from calendence.settings import GatewaySettings

from gateway.server import serve


def main() -> None:
    run_service("gateway", GatewaySettings(), serve)


if __name__ == "__main__":
    main()
