-- Webhook endpoints, one delivery per (endpoint, event), and every attempt of it.

-- Where the event sits in the JetStream stream (the order it happened in) and the exact
-- webhook body, so every attempt and replica sends the same bytes.
ALTER TABLE event_receipts ADD COLUMN stream_seq bigint;
ALTER TABLE event_receipts ADD COLUMN webhook_body bytea;

CREATE TABLE webhook_endpoints (
    id                          uuid PRIMARY KEY,
    seq                         bigserial UNIQUE,
    business_id                 uuid NOT NULL,
    url                         text NOT NULL,
    description                 text NOT NULL DEFAULT '',
    -- Event types delivered; '{*}' is every type.
    events                      text[] NOT NULL,
    enabled                     boolean NOT NULL DEFAULT true,
    disabled_reason             text,
    disabled_at                 timestamptz,
    -- Start of the current unbroken run of failed attempts; NULL after a success.
    failing_since               timestamptz,
    secret                      text NOT NULL,
    -- After a rotation the old secret signs beside the new one until it expires.
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_business_idx ON webhook_endpoints (business_id, seq);

CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    seq              bigserial UNIQUE,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         uuid NOT NULL REFERENCES event_receipts (event_id),
    -- Deliveries with one order_key (the booking) to one endpoint go out in order_seq
    -- (JetStream stream) order. A redelivery asked for by hand has no order_seq.
    order_key        text NOT NULL,
    order_seq        bigint,
    status           text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempt_count    integer NOT NULL DEFAULT 0,
    -- When the next attempt is due; while an attempt runs, when its lease runs out.
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    lease_token      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);
CREATE UNIQUE INDEX webhook_deliveries_once_idx
    ON webhook_deliveries (endpoint_id, event_id) WHERE order_seq IS NOT NULL;
CREATE INDEX webhook_deliveries_due_idx
    ON webhook_deliveries (endpoint_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order_idx
    ON webhook_deliveries (endpoint_id, order_key, order_seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_leased_idx
    ON webhook_deliveries (endpoint_id) WHERE status = 'pending' AND leased_until IS NOT NULL;
CREATE INDEX webhook_deliveries_listing_idx ON webhook_deliveries (endpoint_id, seq);
CREATE INDEX webhook_deliveries_completed_idx
    ON webhook_deliveries (completed_at) WHERE completed_at IS NOT NULL;

CREATE TABLE webhook_attempts (
    delivery_id   uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    attempted_at  timestamptz NOT NULL,
    status_code   integer,
    latency_ms    double precision NOT NULL,
    error         text,
    PRIMARY KEY (delivery_id, attempt)
);
