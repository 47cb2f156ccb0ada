"""Stripe Checkout as booking-service uses it, through the `stripe` library.

The edge to Stripe: every failure to reach it becomes `Unavailable`, so the caller can
keep the client's hold and answer 503.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import stripe
from calendence.errors import Unavailable
from calendence.logs import log_fields

log = logging.getLogger("booking_service.checkout")


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class Deposit:
    booking_id: UUID
    amount: int
    currency: str
    description: str
    client_email: str
    success_url: str
    cancel_url: str
    expires_at: datetime


class Checkout:
    def __init__(self, secret_key: str, api_base: str, timeout_seconds: float) -> None:
        self.configured = bool(secret_key)
        self.client = stripe.StripeClient(
            secret_key or "sk_test_unconfigured",
            base_addresses={"api": api_base} if api_base else None,
            http_client=stripe.AIOHTTPClient(timeout=timeout_seconds),
            # One attempt: the client's own retry (with its Idempotency-Key) is the retry.
            max_network_retries=0,
        )

    async def start(self, deposit: Deposit) -> CheckoutSession:
        if not self.configured:
            raise Unavailable("deposits cannot be taken: Stripe is not configured")
        try:
            session = await self.client.v1.checkout.sessions.create_async(
                params={
                    "mode": "payment",
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": deposit.currency.lower(),
                                "unit_amount": deposit.amount,
                                "product_data": {"name": deposit.description},
                            },
                        }
                    ],
                    "client_reference_id": str(deposit.booking_id),
                    "metadata": {"booking_id": str(deposit.booking_id)},
                    "customer_email": deposit.client_email,
                    "success_url": deposit.success_url,
                    "cancel_url": deposit.cancel_url,
                    "expires_at": int(deposit.expires_at.timestamp()),
                },
                # One booking id, one session: a retried create returns the same one.
                options={"idempotency_key": f"checkout-{deposit.booking_id}"},
            )
        except stripe.StripeError as error:
            log.warning("stripe checkout failed", extra=log_fields(error=repr(error)))
            raise Unavailable("the payment provider is unavailable; try again") from None
        return CheckoutSession(
            session.id, str(session.url), datetime.fromtimestamp(session.expires_at, UTC)
        )

    async def outcome(self, session_id: str) -> tuple[str, str]:
        """(status, payment_status) of a session as Stripe sees it now."""
        try:
            session = await self.client.v1.checkout.sessions.retrieve_async(session_id)
        except stripe.StripeError as error:
            raise Unavailable(f"could not read checkout session: {error}") from None
        return str(session.status), str(session.payment_status)

    async def expire(self, session_id: str) -> None:
        """Stop a session taking payment; one that is no longer open is fine as it is."""
        try:
            await self.client.v1.checkout.sessions.expire_async(session_id)
        except stripe.InvalidRequestError:
            pass
        except stripe.StripeError as error:
            raise Unavailable(f"could not expire checkout session: {error}") from None
