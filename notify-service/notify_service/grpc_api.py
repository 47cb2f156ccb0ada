"""gRPC servicer for notify-service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from calendence import jsonfmt
from calendence.errors import InvalidInput, NotFound
from calendence.ids import booking_ids, parse_uuid
from calendence.notify.v1 import notify_pb2, notify_pb2_grpc
from calendence.pages import page_message
from calendence.rpc import ServicerContext
from calendence.timefmt import to_timestamp

from notify_service.deliveries import Deliveries
from notify_service.endpoints import WebhookEndpoints
from notify_service.mailer import render_message
from notify_service.message_repository import MessageRepository
from notify_service.receipts import ReceiptRepository


def _document(document: dict[str, Any]) -> notify_pb2.WebhookDocument:
    return notify_pb2.WebhookDocument(json=jsonfmt.dumps(document))


@dataclass
class NotifyServicer(notify_pb2_grpc.NotifyServiceServicer):
    receipts: ReceiptRepository
    endpoints: WebhookEndpoints
    deliveries: Deliveries
    messages: MessageRepository

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

    async def CreateEndpoint(
        self, request: notify_pb2.CreateEndpointRequest, context: ServicerContext
    ) -> notify_pb2.WebhookDocument:
        business_id = parse_uuid(request.business_id, "business_id")
        return _document(await self.endpoints.create(business_id, request.body_json))

    async def ListEndpoints(
        self, request: notify_pb2.ListEndpointsRequest, context: ServicerContext
    ) -> notify_pb2.WebhookPage:
        business_id = parse_uuid(request.business_id, "business_id")
        return page_message(
            notify_pb2.WebhookPage,
            *await self.endpoints.list_page(business_id, request.cursor, request.limit),
        )

    async def GetEndpoint(
        self, request: notify_pb2.EndpointRef, context: ServicerContext
    ) -> notify_pb2.WebhookDocument:
        return _document(await self.endpoints.get(*_ref(request)))

    async def UpdateEndpoint(
        self, request: notify_pb2.UpdateEndpointRequest, context: ServicerContext
    ) -> notify_pb2.WebhookDocument:
        business_id, endpoint_id = _ref(request)
        return _document(await self.endpoints.update(business_id, endpoint_id, request.patch_json))

    async def DeleteEndpoint(
        self, request: notify_pb2.EndpointRef, context: ServicerContext
    ) -> notify_pb2.DeleteEndpointResponse:
        await self.endpoints.delete(*_ref(request))
        return notify_pb2.DeleteEndpointResponse()

    async def RotateEndpointSecret(
        self, request: notify_pb2.EndpointRef, context: ServicerContext
    ) -> notify_pb2.WebhookDocument:
        return _document(await self.endpoints.rotate_secret(*_ref(request)))

    async def ListDeliveries(
        self, request: notify_pb2.ListDeliveriesRequest, context: ServicerContext
    ) -> notify_pb2.WebhookPage:
        business_id, endpoint_id = _ref(request)
        return page_message(
            notify_pb2.WebhookPage,
            *await self.deliveries.list_page(
                business_id, endpoint_id, request.cursor, request.limit
            ),
        )

    async def Redeliver(
        self, request: notify_pb2.RedeliverRequest, context: ServicerContext
    ) -> notify_pb2.WebhookDocument:
        business_id, endpoint_id = _ref(request)
        return _document(
            await self.deliveries.redeliver(business_id, endpoint_id, request.body_json)
        )

    async def ListMessages(
        self, request: notify_pb2.ListMessagesRequest, context: ServicerContext
    ) -> notify_pb2.WebhookPage:
        rows = await self.messages.for_booking(*booking_ids(request))
        return page_message(notify_pb2.WebhookPage, [render_message(row) for row in rows], "")


def _ref(
    request: notify_pb2.EndpointRef
    | notify_pb2.UpdateEndpointRequest
    | notify_pb2.ListDeliveriesRequest
    | notify_pb2.RedeliverRequest,
) -> tuple[UUID, UUID]:
    """The business and endpoint a request names; a malformed endpoint id names none."""
    business_id = parse_uuid(request.business_id, "business_id")
    try:
        endpoint_id = parse_uuid(request.endpoint_id, "endpoint_id")
    except InvalidInput:
        raise NotFound("no such webhook endpoint") from None
    return business_id, endpoint_id
