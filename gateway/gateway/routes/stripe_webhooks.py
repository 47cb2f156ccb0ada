"""Stripe's webhooks: verified here with the endpoint secret, settled by booking-service."""

from __future__ import annotations

import logging
from typing import Literal

import stripe
from aiohttp import web
from calendence.booking.v1 import booking_pb2
from calendence.logs import log_fields
from calendence.schemas.common import Answer
from pydantic import BaseModel, ConfigDict

from gateway.appkeys import DOWNSTREAM, SETTINGS
from gateway.contract import Body, Operation, Reply, route
from gateway.http_io import call, json_response
from gateway.problems import problem_response

log = logging.getLogger("gateway.stripe")

# The events that settle a deposit; Stripe may send others, which we acknowledge only.
CHECKOUT_EVENTS = {
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
}


class StripeEvent(BaseModel):
    """A Stripe event object, as Stripe signs and sends it."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str


class Received(Answer):
    received: Literal[True]


async def stripe_webhook(request: web.Request) -> web.Response:
    secret = request.app[SETTINGS].stripe_webhook_secret
    if not secret:
        return problem_response(503, "Stripe webhooks are not configured here")
    payload = await request.read()
    try:
        event = stripe.Webhook.construct_event(
            payload.decode(), request.headers.get("Stripe-Signature"), secret
        )
    except (ValueError, stripe.SignatureVerificationError) as error:
        log.warning("stripe webhook refused", extra=log_fields(error=str(error)))
        return problem_response(400, "the Stripe-Signature does not match this payload")
    if event.type in CHECKOUT_EVENTS:
        session = event.data.object
        await call(
            request,
            request.app[DOWNSTREAM].bookings.HandleCheckoutEvent,
            booking_pb2.CheckoutEvent(
                event_id=event.id,
                # A failed async payment ends the deposit like an expiry does.
                type=event.type,
                session_id=session["id"],
                payment_status=str(session["payment_status"]),
            ),
        )
    return json_response({"received": True})


routes = [
    route(
        Operation(
            "POST",
            "/webhooks/stripe",
            name="receive_stripe_event",
            summary="Stripe's webhooks",
            tag="Stripe",
            # Authenticated by Stripe's signature, not by a key.
            key_kinds=(),
            description="Where Stripe sends Checkout events: `checkout.session.completed` "
            "confirms a deposit booking, `checkout.session.expired` cancels it. Verified with "
            "STRIPE_WEBHOOK_SECRET; each event id is acted on once. Not for API clients.",
            body=Body(StripeEvent, checked=False),
            headers={"Stripe-Signature": ("Stripe's signature of the raw body", True)},
            replies=(Reply(200, Received, "Acknowledged (acted on, or not a Checkout event)"),),
            conflicts=False,
            errors={
                400: "The Stripe-Signature does not match the body",
                503: "Stripe webhooks are not configured on this gateway, or a service "
                "behind it is unavailable",
            },
        ),
        stripe_webhook,
    )
]
