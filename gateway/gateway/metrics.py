"""Prometheus metrics of the gateway: requests and latency by route and status."""

from __future__ import annotations

import gc
import time

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "calendence_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "calendence_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
GC_PAUSES = Histogram(
    "calendence_gc_pause_seconds",
    "How long each run of Python's cyclic garbage collector stopped the gateway, by generation.",
    ["generation"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
    registry=REGISTRY,
)
HOLD_BATCH_SIZE = Histogram(
    "calendence_hold_batch_size",
    "Holds sent to hold-service in one PlaceHolds call: how much coalescing shares each "
    "call's fixed cost under load (1 on a quiet gateway).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    registry=REGISTRY,
)
_gc_started: list[float] = [0.0]
# (route, method, status) -> its counter and histogram: `labels` takes a lock and
# checks its arguments on every call, a few microseconds per request.
_request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def count_request(route: str, method: str, status: int, seconds: float) -> None:
    """One answered request in REQUESTS and LATENCY."""
    series = _request_series.get((route, method, status))
    if series is None:
        labels = (route, method, str(status))
        series = REQUESTS.labels(*labels), LATENCY.labels(*labels)
        _request_series[(route, method, status)] = series
    series[0].inc()
    series[1].observe(seconds)


def _time_gc(phase: str, info: dict[str, int]) -> None:
    # Called by the interpreter around every collection: a pause no request log shows.
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        GC_PAUSES.labels(str(info["generation"])).observe(time.perf_counter() - _gc_started[0])


def observe_gc_pauses() -> None:
    if _time_gc not in gc.callbacks:
        gc.callbacks.append(_time_gc)
