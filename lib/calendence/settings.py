"""Settings read from environment variables, one class per service.

Every variable, its default and its meaning is listed in README ("Configuration").
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    log_level: str = "INFO"
    # Seconds a service waits for in-flight calls after SIGTERM before it exits.
    shutdown_grace_seconds: float = 10.0
    nats_url: str = "nats://127.0.0.1:4222"


class HoldServiceSettings(CommonSettings):
    hold_service_port: int = 50051
    redis_url: str = "redis://127.0.0.1:6379/0"
    booking_service_addr: str = "127.0.0.1:50052"
    hold_ttl_seconds: int = 600
    # Catalogue snapshots are dropped on catalogue events; this bounds staleness
    # should an event be missed.
    catalogue_cache_seconds: float = 60.0


class BookingServiceSettings(CommonSettings):
    booking_service_port: int = 50052
    database_url: str = "postgresql://postgres@127.0.0.1:5432/calendence"
    hold_service_addr: str = "127.0.0.1:50051"
    db_pool_min: int = 2
    db_pool_max: int = 10
    session_ttl_seconds: int = 7200
    outbox_poll_seconds: float = 0.5
    # Off for a replica that must never publish (the relay also runs on one replica at a
    # time by itself, through an advisory lock).
    outbox_relay_enabled: bool = True
    # Stripe: with STRIPE_API_BASE empty the `stripe` library talks to Stripe itself;
    # the local stack points it at its Stripe-compatible server instead.
    stripe_secret_key: str = ""
    stripe_api_base: str = ""
    stripe_timeout_seconds: float = 3.0
    # Stripe refuses Checkout Sessions that expire in under 30 minutes: the shortest
    # allowed is the hold TTL (10 minutes) plus a 20-minute margin to pay.
    checkout_expiry_seconds: int = 1800
    # Where Stripe sends the client after paying or giving up, when the business has
    # not set its own success_url / cancel_url.
    checkout_fallback_url: str = "https://calendence.com/checkout/return"
    # How often unpaid bookings whose checkout expired are looked for, in case
    # Stripe's webhook never came.
    payment_sweep_seconds: float = 30.0
    # How often due reminders are looked for at most (sooner when one falls due).
    reminder_poll_seconds: float = 5.0
    # The length of a reminder's "minute" in seconds: 60, except in tests, which
    # shorten it so that a 2-minute reminder does not take 2 minutes.
    reminder_minute_seconds: float = Field(default=60.0, gt=0)


class NotifyServiceSettings(CommonSettings):
    notify_service_port: int = 50053
    # notify-service keeps its own database on the same or another server.
    notify_database_url: str = "postgresql://postgres@127.0.0.1:5432/calendence_notify"
    notify_db_pool_max: int = 10
    # Development only: let webhooks reach http:// URLs and private, loopback and
    # link-local addresses (a receiver on localhost). Never in production.
    webhooks_allow_private_targets: bool = False
    # One delivery attempt may take this long before it counts as failed.
    webhooks_attempt_timeout_seconds: float = 10.0
    # Attempts one replica runs at once, and attempts one endpoint gets at once across
    # every replica (a slow endpoint never takes the others' turn).
    webhooks_max_in_flight: int = 100
    webhooks_max_in_flight_per_endpoint: int = 4
    # How often due retries are looked for (new events wake the sender at once).
    webhooks_poll_seconds: float = 1.0
    # Client emails: the SMTP server (`smtp://user:password@host:587`, or `smtps://`);
    # empty sends none (webhooks, reminders included, still go out).
    smtp_url: str = ""
    mail_from: str = "Calendence <bookings@calendence.localhost>"
    smtp_timeout_seconds: float = 10.0
    # How often due email retries are looked for (new messages wake the sender at once).
    mail_poll_seconds: float = 1.0


class GatewaySettings(CommonSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    hold_service_addr: str = "127.0.0.1:50051"
    booking_service_addr: str = "127.0.0.1:50052"
    notify_service_addr: str = "127.0.0.1:50053"
    # Seconds a verified key stays in the gateway's cache; revocations evict at once.
    auth_cache_seconds: float = 30.0
    # Deadline for every gRPC call the gateway makes.
    rpc_timeout_seconds: float = 5.0
    # Idempotency-Key replays (and later rate limits) live here, shared by replicas.
    redis_url: str = "redis://127.0.0.1:6379/0"
    idempotency_ttl_seconds: int = 24 * 3600
    # Verifies the Stripe-Signature of webhooks at /webhooks/stripe.
    stripe_webhook_secret: str = ""
    # Rate limits per key, a token bucket each (shared by every replica through Redis):
    # the steady rate in requests per second and the burst (bucket size). Business and
    # hub keys (servers) get RATE_LIMIT_*; session tokens (a browser widget each) the
    # stricter RATE_LIMIT_SESSION_*.
    rate_limit_per_second: float = Field(default=100.0, gt=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    rate_limit_session_per_second: float = Field(default=10.0, gt=0)
    rate_limit_session_burst: int = Field(default=40, ge=1)
