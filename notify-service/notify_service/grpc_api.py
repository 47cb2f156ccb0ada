"""gRPC servicer for notify-service."""

from __future__ import annotations

from calendence.errors import NotFound
from calendence.ids import parse_uuid
from calendence.notify.v1 import notify_pb2, notify_pb2_grpc
from calendence.rpc import ServicerContext
from calendence.timefmt import to_timestamp

from notify_service.receipts import ReceiptRepository


class NotifyServicer(notify_pb2_grpc.NotifyServiceServicer):
    def __init__(self, receipts: ReceiptRepository) -> None:
        self.receipts = receipts

    async def GetEventReceipt(
        self, request: notify_pb2.GetEventReceiptRequest, context: ServicerContext
    ) -> notify_pb2.EventReceipt:
        receipt = await self.receipts.get(parse_uuid(request.event_id, "event_id"))
        if receipt is None:
            raise NotFound("no such event has been received")
        return notify_pb2.EventReceipt(
            event_id=str(receipt.event_id),
            type=receipt.type,
            business_id=str(receipt.business_id),
            received_at=to_timestamp(receipt.received_at),
            deliveries=receipt.deliveries,
        )
