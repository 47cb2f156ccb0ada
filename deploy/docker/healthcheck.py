"""Container health probe: exits 0 when the service in this container is serving.

    python /opt/calendence/healthcheck.py gateway|hold-service|booking-service|notify-service

The port comes from the same settings class the service reads, so a changed
`*_PORT` never breaks the probe. Nothing is downloaded: gRPC services are asked through
the standard grpc.health.v1 service with grpcio (overall status, service name ""),
which is SERVING only while every store of the service answers; the gateway through
GET /readyz, which is 200 only while every downstream service and store is ready.
Docker and `docker compose up --wait` therefore call a container healthy when it can
do its work end to end. (Kubernetes does not use this: it has its own probes.)
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0
GRPC_PORT_FIELDS = {
    "hold-service": "hold_service_port",
    "booking-service": "booking_service_port",
    "notify-service": "notify_service_port",
}
# Listening on every address means the probe reaches it on loopback.
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


def gateway_ready() -> bool:
    from calendence.settings import GatewaySettings

    settings = GatewaySettings()
    host = "127.0.0.1" if settings.gateway_host in WILDCARD_HOSTS else settings.gateway_host
    url = f"http://{host}:{settings.gateway_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}", file=sys.stderr)
        return False


def grpc_serving(service: str) -> bool:
    import grpc
    from calendence import settings as settings_module
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    classes = {
        "hold-service": settings_module.HoldServiceSettings,
        "booking-service": settings_module.BookingServiceSettings,
        "notify-service": settings_module.NotifyServiceSettings,
    }
    port = int(getattr(classes[service](), GRPC_PORT_FIELDS[service]))
    target = f"127.0.0.1:{port}"
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            print(f"{target}: {error.code().name}", file=sys.stderr)  # type: ignore[attr-defined]
            return False
    status = str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))
    if status != "SERVING":
        print(f"{target}: {status}", file=sys.stderr)
    return status == "SERVING"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in {"gateway", *GRPC_PORT_FIELDS}:
        print(__doc__, file=sys.stderr)
        return 2
    healthy = gateway_ready() if argv[1] == "gateway" else grpc_serving(argv[1])
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
