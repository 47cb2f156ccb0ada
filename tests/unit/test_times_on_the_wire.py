"""Times cross gRPC as protobuf Timestamps: what goes in comes back out, to the
microsecond, whatever zone it was written in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from calendence.hold.v1 import hold_pb2
from calendence.timefmt import (
    from_timestamp,
    iso_of_timestamp,
    set_timestamp,
    to_iso,
    to_timestamp,
)
from google.protobuf.timestamp_pb2 import Timestamp

MOMENTS = [
    datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC),
    datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Paris")),  # just after spring-forward
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the epoch
    datetime(2035, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
]


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_moment_comes_back_as_the_same_instant(moment: datetime) -> None:
    assert from_timestamp(to_timestamp(moment)) == moment


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_moment_reads_as_protobufs_own_conversion_does(moment: datetime) -> None:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    assert to_timestamp(moment) == stamp


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_time_written_into_a_messages_field_is_the_one_a_timestamp_carries(
    moment: datetime,
) -> None:
    written = hold_pb2.PlacedHold()
    set_timestamp(written.starts_at, moment)
    assert written == hold_pb2.PlacedHold(starts_at=to_timestamp(moment))
    assert from_timestamp(written.starts_at) == moment


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_timestamp_reads_as_the_iso_text_its_moment_does(moment: datetime) -> None:
    assert iso_of_timestamp(to_timestamp(moment)) == to_iso(moment)
