"""Placing holds through hold-service, the holds that arrive together in one call.

Each hold request awaits its own outcome; `calendence.coalesce` sends the holds that
queue while earlier calls are in flight as one `PlaceHolds` call, which hold-service
runs as one Redis pipeline. A quiet gateway sends each hold alone, at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from calendence import rpc
from calendence.coalesce import Coalescer
from calendence.errors import DomainError, NotFound
from calendence.hold.outcomes import outcome_of
from calendence.hold.v1 import hold_pb2, hold_pb2_grpc

from gateway.metrics import HOLD_BATCH_SIZE


class HoldPlacer:
    def __init__(
        self,
        stub: hold_pb2_grpc.HoldServiceStub,
        *,
        timeout: float,
        in_flight: int,
        batch_max: int,
    ) -> None:
        self.stub = stub
        self.timeout = timeout
        self.batches: Coalescer[hold_pb2.PlaceHoldRequest, hold_pb2.PlacedHold] = Coalescer(
            self._send,
            max_in_flight=in_flight,
            max_batch=batch_max,
            on_abandoned=self._give_back,
        )

    async def place(self, wanted: hold_pb2.PlaceHoldRequest) -> hold_pb2.PlacedHold:
        """The hold placed, or the domain error hold-service answered for it."""
        return await self.batches.submit(wanted)

    async def _send(
        self, batch: list[hold_pb2.PlaceHoldRequest]
    ) -> Sequence[hold_pb2.PlacedHold | DomainError]:
        HOLD_BATCH_SIZE.observe(len(batch))
        answer = await rpc.unary(
            self.stub.PlaceHolds, hold_pb2.PlaceHoldsRequest(holds=batch), timeout=self.timeout
        )
        return [outcome_of(item) for item in answer.outcomes]

    async def _give_back(
        self, wanted: hold_pb2.PlaceHoldRequest, hold: hold_pb2.PlacedHold
    ) -> None:
        """A hold placed for a request that was gone by then: nobody will use it."""
        with contextlib.suppress(NotFound):  # expired or released meanwhile
            await rpc.unary(
                self.stub.ReleaseHold,
                hold_pb2.ReleaseHoldRequest(business_id=wanted.business_id, hold_id=hold.hold_id),
                timeout=self.timeout,
            )
