"""One way to write and read times: ISO 8601 with an explicit offset, UTC on output."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def to_iso(moment: datetime) -> str:
    """`2026-03-25T14:00:00+00:00`, the form the Bookings page shows."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def to_timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def from_timestamp(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
