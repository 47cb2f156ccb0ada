"""`calendence-hold-service`: serve holds over gRPC until SIGTERM."""

from __future__ import annotations

import uvloop
from calendence.logs import configure_logging
from calendence.settings import HoldServiceSettings


def main() -> None:
    settings = HoldServiceSettings()
    configure_logging("hold-service", settings.log_level)
    from hold_service.server import serve

    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
