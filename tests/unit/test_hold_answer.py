"""The gateway writes a hold's answer straight from hold-service's reply: it must be
the documented `Hold` model's JSON, byte for byte."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from calendence.hold.v1 import hold_pb2
from calendence.schemas.holds import Hold
from calendence.timefmt import from_timestamp, to_timestamp
from gateway.routes.holds import hold_answer


def placed(staff_id: str) -> hold_pb2.PlacedHold:
    starts = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)
    return hold_pb2.PlacedHold(
        hold_id=str(uuid.uuid4()),
        service_id=str(uuid.uuid4()),
        location_id=str(uuid.uuid4()),
        staff_id=staff_id,
        starts_at=to_timestamp(starts),
        ends_at=to_timestamp(starts + timedelta(minutes=45)),
        expires_at=to_timestamp(datetime(2027, 3, 28, 0, 10, 5, 750123, tzinfo=UTC)),
    )


def as_the_model_writes_it(hold: hold_pb2.PlacedHold) -> bytes:
    model = Hold(
        hold_id=uuid.UUID(hold.hold_id),
        service_id=uuid.UUID(hold.service_id),
        location_id=uuid.UUID(hold.location_id),
        staff_id=uuid.UUID(hold.staff_id) if hold.staff_id else None,
        starts_at=from_timestamp(hold.starts_at),
        ends_at=from_timestamp(hold.ends_at),
        expires_at=from_timestamp(hold.expires_at),
    )
    return model.__pydantic_serializer__.to_json(model, exclude_none=True)


@pytest.mark.parametrize("staff_id", [str(uuid.uuid4()), ""], ids=["with staff", "without"])
def test_a_holds_answer_is_the_hold_models_json(staff_id: str) -> None:
    hold = placed(staff_id)
    assert hold_answer(hold) == as_the_model_writes_it(hold)


def test_a_hold_without_staff_has_no_staff_id_field() -> None:
    assert b"staff_id" not in hold_answer(placed(""))
