"""Settings read from environment variables, one class per service.

Every variable, its default and its meaning is listed in README ("Configuration").
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    log_level: str = "INFO"
    # Requests and RPCs logged at INFO: failures, those slower than this, and a sample
    # of the rest (a share from 0 to 1). At LOG_LEVEL=DEBUG every one is logged.
    slow_request_ms: float = Field(default=250.0, ge=0)
    access_log_sample_rate: float = Field(default=0.01, ge=0, le=1)
    # Seconds a service waits for in-flight calls after SIGTERM before it exits.
    shutdown_grace_seconds: float = 10.0
    # One NATS server, or every server of a cluster separated by commas
    # (`nats://n1:4222,nats://n2:4222,nats://n3:4222`): a client moves to another when
    # its server goes away.
    nats_url: str = "nats://127.0.0.1:4222"
    # Copies JetStream keeps of the events stream, its consumers (and any other stream
    # or bucket a service creates): 1 on a single server, 3 on a three-node cluster, so
    # losing one node loses no event. Applied when a service starts (create or update).
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)
    # A client pings its NATS server this often and gives the connection up after
    # NATS_MAX_OUTSTANDING_PINGS unanswered pings: a server that hangs without closing
    # its connections is left for another of the cluster's servers after about
    # interval x (pings + 1) seconds.
    nats_ping_interval_seconds: float = Field(default=2.0, gt=0)
    nats_max_outstanding_pings: int = Field(default=2, ge=1)


class RedisSettings(CommonSettings):
    """The Redis that hold-service keeps holds in and the gateway its Idempotency-Key
    records and rate-limit buckets: the same variables in both."""

    # One Redis (`redis://host:6379/0`) or a Redis Cluster
    # (`redis+cluster://node1:6379,node2:6379,node3:6379`, any nodes as seeds).
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Longest wait for a Redis answer (and for a connection to open): a node that hangs
    # without closing its connections (frozen, cut off) costs a call this long, then
    # UNAVAILABLE (503 at the gateway), while a cluster moves the node's slots to its
    # replica. redis-py's own default; far above any script's time.
    redis_socket_timeout_seconds: float = Field(default=5.0, gt=0)


class HoldServiceSettings(RedisSettings):
    hold_service_port: int = 50051
    hold_ttl_seconds: int = 600
    # Redis connections per replica. Each hold holds one for a single script call
    # (under a millisecond), so 64 keep Redis busy for thousands of concurrent holds;
    # past that a call waits up to REDIS_POOL_TIMEOUT_SECONDS (as long as the gateway's
    # deadline: a Redis that is slow for a moment is waited out) for a free one, then
    # answers UNAVAILABLE (503 at the gateway).
    redis_pool_max: int = Field(default=64, ge=1)
    redis_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    # Catalogue snapshots read from the NATS bucket are dropped when the bucket's watch
    # reports a newer one; this bounds staleness should the watch ever miss one.
    catalogue_cache_seconds: float = 60.0


class BookingServiceSettings(CommonSettings):
    booking_service_port: int = 50052
    database_url: str = "postgresql://postgres@127.0.0.1:5432/calendence"
    # A service's address (see GatewaySettings.hold_service_addr for the forms).
    hold_service_addr: str = "127.0.0.1:50051"
    db_pool_min: int = 2
    # PostgreSQL connections per replica. A call holds one for a few statements (about
    # a millisecond each): 20 keep the database busy on a few cores; more only queue
    # inside PostgreSQL. Past that a call waits up to DB_POOL_ACQUIRE_TIMEOUT_SECONDS
    # (less than the gateway's deadline), then answers UNAVAILABLE (503 at the gateway).
    db_pool_max: int = Field(default=20, ge=1)
    db_pool_acquire_timeout_seconds: float = Field(default=3.0, gt=0)
    session_ttl_seconds: int = 7200
    outbox_poll_seconds: float = 0.5
    # Off for a replica that must never publish (the relay also runs on one replica at a
    # time by itself, through an advisory lock).
    outbox_relay_enabled: bool = True
    # A booking without a deposit or an Idempotency-Key is written with its event in one
    # statement, the event's data as the booking's row, which the relay renders. Off
    # only during a rolling upgrade from a version before it: an older replica's relay
    # would publish such an event unrendered.
    book_in_one_statement: bool = True
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
    # The gateway's address as clients reach it: manage links and calendar feed URLs
    # start with it (`make run` sets it to the local gateway).
    public_base_url: str = "http://127.0.0.1:8080"
    # A consumed hold is a pending claim in Redis that lapses after this long unless
    # the booking's commit makes it last until the booking ends: a crash in between
    # frees the slot within this time. A booking must commit within three quarters of
    # it (or answers 503 and writes nothing), so a claim never lapses under a booking.
    pending_claim_seconds: float = Field(default=20.0, gt=0, le=30)
    # How often pending claims near their deadline are compared with PostgreSQL, so a
    # booking that committed just before a crash gets its long claim.
    claim_repair_seconds: float = Field(default=2.0, gt=0)
    # Kept as long as the gateway keeps its Idempotency-Key answers in Redis.
    idempotency_ttl_seconds: int = 24 * 3600
    # Fault injection for crash tests, never in production: pause every booking (or, at
    # release_after_commit, every cancellation or no-show; at move_*, every reschedule)
    # at this point until the process is killed.
    booking_fault_pause_at: Literal[
        "",
        "after_consume",
        "before_commit",
        "after_commit",
        "release_after_commit",
        "move_before_commit",
        "move_after_commit",
    ] = ""
    # With BOOKING_FAULT_PAUSE_AT: pause this many seconds and go on, where 0 (the
    # default) pauses until the process is killed.
    booking_fault_pause_seconds: float = Field(default=0.0, ge=0)
    # How often due reminders are looked for at most (sooner when one falls due).
    reminder_poll_seconds: float = 5.0
    # The length of a reminder's "minute" in seconds: 60, except in tests, which
    # shorten it so that a 2-minute reminder does not take 2 minutes.
    reminder_minute_seconds: float = Field(default=60.0, gt=0)


class NotifyServiceSettings(CommonSettings):
    notify_service_port: int = 50053
    # notify-service keeps its own database on the same or another server.
    notify_database_url: str = "postgresql://postgres@127.0.0.1:5432/calendence_notify"
    notify_db_pool_max: int = Field(default=10, ge=1)
    # An event fetched but not acked within this long (its replica or its NATS server
    # died) is delivered again, to any replica. Storing a batch takes milliseconds.
    notify_events_ack_wait_seconds: float = Field(default=30.0, gt=0)
    # A full pool makes a caller wait at most this long, then UNAVAILABLE. Longer than
    # booking-service's: most callers are the consumer and the webhook sender, which
    # would rather wait than retry; API calls are cut shorter by the gateway's deadline.
    notify_db_pool_acquire_timeout_seconds: float = Field(default=10.0, gt=0)
    # Development only: let webhooks reach http:// URLs and private, loopback and
    # link-local addresses (a receiver on localhost). Never in production.
    webhooks_allow_private_targets: bool = False
    # One delivery attempt may take this long before it counts as failed.
    webhooks_attempt_timeout_seconds: float = 10.0
    # Attempts one replica runs at once, and attempts one endpoint gets at once across
    # every replica (a slow endpoint never takes the others' turn). Each attempt's slot
    # is refilled only by the dispatcher's next claim, a PostgreSQL round trip: with 4 per
    # endpoint, 300 cancellations at once had their webhooks 0.4-0.6 s after their
    # answers at p99 (README, "Webhooks in a burst"). 25 endpoints that hang fill one
    # replica, as with 4 of 100.
    webhooks_max_in_flight: int = 400
    webhooks_max_in_flight_per_endpoint: int = 16
    # How often due retries are looked for (new events wake the sender at once).
    webhooks_poll_seconds: float = 1.0
    # Client emails: the SMTP server (`smtp://user:password@host:587`, or `smtps://`);
    # empty sends none (webhooks, reminders included, still go out).
    smtp_url: str = ""
    mail_from: str = "Calendence <bookings@calendence.localhost>"
    smtp_timeout_seconds: float = 10.0
    # How often due email retries are looked for (new messages wake the sender at once).
    mail_poll_seconds: float = 1.0
    # Webhooks go first: while webhook attempts are being made, an email waits for them
    # at most this long after it was queued.
    mail_wait_for_webhooks_seconds: float = Field(default=5.0, ge=0)


class GatewaySettings(RedisSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    # Each service's address: `host:port` (a DNS name resolving to every replica, e.g.
    # a headless Kubernetes Service), or the `ip:port` of each replica separated by
    # commas. Calls go round robin over every address, skipping replicas that are down.
    hold_service_addr: str = "127.0.0.1:50051"
    booking_service_addr: str = "127.0.0.1:50052"
    notify_service_addr: str = "127.0.0.1:50053"
    # Seconds a verified key stays in the gateway's cache; revocations evict at once.
    auth_cache_seconds: float = 30.0
    # Deadline for every gRPC call the gateway makes.
    rpc_timeout_seconds: float = 5.0
    # Holds that arrive while HOLD_BATCHES_IN_FLIGHT calls to hold-service are under way
    # wait and leave together, up to HOLD_BATCH_MAX in one PlaceHolds call; with fewer
    # in flight a hold leaves at once, alone. Past 64 holds a batch is two place scripts
    # in hold-service's one Redis round trip; with hundreds of requests at once, batches
    # of up to 128 cost each hold less than batches of 64 (README, "Saturation at each
    # target's own peak").
    hold_batches_in_flight: int = Field(default=2, ge=1)
    hold_batch_max: int = Field(default=128, ge=1)
    # A request body must arrive within this many seconds of its headers; a client that
    # announces a body and stalls is answered 408 and disconnected.
    request_body_timeout_seconds: float = Field(default=10.0, gt=0)
    # A connection that sends nothing (or never finishes its headers) for this long is
    # closed; aiohttp's own default would keep it for an hour.
    idle_connection_timeout_seconds: float = Field(default=75.0, gt=0)
    # Idempotency-Key replays (and, unless RATE_LIMIT_REDIS_URL says otherwise, the
    # rate-limit buckets) live in REDIS_URL's Redis (`RedisSettings`), shared by replicas.
    idempotency_ttl_seconds: int = 24 * 3600
    # Redis connections per replica for Idempotency-Key records. A request holds one
    # for one command at a time (well under a millisecond), so 64 serve thousands of
    # concurrent requests; past that a request waits up to
    # GATEWAY_REDIS_POOL_TIMEOUT_SECONDS for a free one, then answers 503 with
    # Retry-After.
    gateway_redis_pool_max: int = Field(default=64, ge=1)
    gateway_redis_pool_timeout_seconds: float = Field(default=3.0, gt=0)
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
    # Where the shared buckets live (empty: REDIS_URL), and the limiter's own pool: a
    # request waits at most RATE_LIMIT_REDIS_TIMEOUT_SECONDS for a connection and an
    # answer. When Redis cannot answer, each replica limits by itself: every key gets
    # RATE_LIMIT_FALLBACK_SHARE of its bucket (rate and burst) per replica, starting
    # from what Redis last said of it. 1.0 lets N replicas grant up to N times the
    # limit while Redis is down; 1/N keeps the total near it.
    rate_limit_redis_url: str = ""
    rate_limit_redis_pool_max: int = Field(default=32, ge=1)
    rate_limit_redis_timeout_seconds: float = Field(default=1.0, gt=0)
    rate_limit_fallback_share: float = Field(default=1.0, gt=0, le=1)
    # A key Redis answered for within this many seconds is decided from this replica's
    # copy of its bucket, without waiting for Redis; what is let through goes to Redis
    # at once in the background (gateway/gateway/rate_limits.py: the tolerance across
    # replicas). 0 asks Redis on every request.
    rate_limit_local_seconds: float = Field(default=10.0, ge=0)
    # Fault injection for tests, off by default and never for production: after a hold
    # is placed the gateway "fail"s (an internal error before answering) or "pause"s for
    # GATEWAY_FAULT_PAUSE_SECONDS before answering, to show that a hold whose answer
    # never reached its client is released.
    gateway_fault_after_hold_placed: Literal["", "fail", "pause"] = ""
    gateway_fault_pause_seconds: float = Field(default=2.0, ge=0)
