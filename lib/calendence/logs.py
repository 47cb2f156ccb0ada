"""Structured JSON-line logging with the request id of the call being served."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
import uuid

import orjson

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# gRPC metadata key the gateway sets and every service reads.
REQUEST_ID_METADATA_KEY = "x-request-id"


def new_request_id() -> str:
    return uuid.uuid4().hex


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


def configure_logging(service: str, level: str = "INFO") -> None:
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
