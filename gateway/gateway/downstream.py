"""gRPC channels and stubs to the three services, opened once per gateway process."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from calendence import rpc
from calendence.auth.v1 import auth_pb2_grpc
from calendence.booking.v1 import booking_pb2_grpc
from calendence.catalogue.v1 import catalogue_pb2_grpc
from calendence.hold.v1 import hold_pb2_grpc
from calendence.manage.v1 import manage_pb2_grpc
from calendence.notify.v1 import notify_pb2_grpc
from calendence.settings import GatewaySettings


@dataclass
class Downstream:
    channels: dict[str, grpc.aio.Channel]
    auth: auth_pb2_grpc.AuthServiceStub
    catalogue: catalogue_pb2_grpc.CatalogueServiceStub
    bookings: booking_pb2_grpc.BookingServiceStub
    holds: hold_pb2_grpc.HoldServiceStub
    notify: notify_pb2_grpc.NotifyServiceStub
    manage: manage_pb2_grpc.ManageServiceStub
    calendars: manage_pb2_grpc.CalendarServiceStub

    @classmethod
    def connect(cls, settings: GatewaySettings) -> Downstream:
        channels = {
            "hold-service": rpc.open_channel(settings.hold_service_addr),
            "booking-service": rpc.open_channel(settings.booking_service_addr),
            "notify-service": rpc.open_channel(settings.notify_service_addr),
        }
        booking = channels["booking-service"]
        return cls(
            channels=channels,
            auth=auth_pb2_grpc.AuthServiceStub(booking),
            catalogue=catalogue_pb2_grpc.CatalogueServiceStub(booking),
            bookings=booking_pb2_grpc.BookingServiceStub(booking),
            holds=hold_pb2_grpc.HoldServiceStub(channels["hold-service"]),
            notify=notify_pb2_grpc.NotifyServiceStub(channels["notify-service"]),
            manage=manage_pb2_grpc.ManageServiceStub(booking),
            calendars=manage_pb2_grpc.CalendarServiceStub(booking),
        )

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close(None)


# What each service reports on its health service besides itself; /readyz shows each.
SERVICE_DEPENDENCIES = {
    "hold-service": ("redis", "nats"),
    "booking-service": ("postgres", "nats"),
    "notify-service": ("postgres", "nats"),
}
