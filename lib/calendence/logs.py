"""Structured JSON-line logging with the request id of the call being served."""

from __future__ import annotations

import contextvars
import logging
import random
import sys
import time

import orjson

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# gRPC metadata key the gateway sets and every service reads.
REQUEST_ID_METADATA_KEY = "x-request-id"


def new_request_id() -> str:
    """32 hex digits, as a uuid4's would be. A request id names a request in the logs,
    it guards nothing, so it comes from `random` rather than the OS's entropy (uuid4
    asks the kernel each time: a system call per request)."""
    return f"{random.getrandbits(128):032x}"


class JsonLineFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class AccessLog:
    """Which finished requests get an access line: errors, slow ones and a sample.

    A line per request at INFO cost about a tenth of a hold's CPU; failures and slow
    calls are what an operator reads, and the sample shows the ordinary traffic.
    At DEBUG every request is logged.
    """

    def __init__(self, slow_seconds: float = 0.25, sample_rate: float = 0.01) -> None:
        self.slow_seconds = slow_seconds
        self.sample_rate = sample_rate
        self.every = False

    def wanted(self, elapsed_seconds: float, failed: bool) -> bool:
        return (
            failed
            or self.every
            or elapsed_seconds >= self.slow_seconds
            or random.random() < self.sample_rate
        )


# Set from the service's settings by configure_logging; read by the gateway's and the
# gRPC servers' per-request code.
access_log = AccessLog()


def configure_logging(
    service: str,
    level: str = "INFO",
    *,
    slow_request_ms: float = 250.0,
    access_log_sample_rate: float = 0.01,
) -> None:
    access_log.slow_seconds = slow_request_ms / 1000
    access_log.sample_rate = access_log_sample_rate
    access_log.every = logging.getLevelName(level.upper()) == logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request access lines come from our own middleware, not aiohttp's.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def log_fields(**fields: object) -> dict[str, dict[str, object]]:
    """`logger.info("msg", extra=log_fields(key=value))` adds keys to the JSON line."""
    return {"fields": fields}
