"""`calendence-gateway`: serve the public REST API until SIGTERM."""

from __future__ import annotations

import uvloop
from calendence.logs import configure_logging
from calendence.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    from gateway.server import serve

    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
