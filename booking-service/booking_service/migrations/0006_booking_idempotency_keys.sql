-- Idempotency-Keys of POST /api/v1/bookings, written in the booking's own transaction:
-- a retry is replayed from here when the gateway's Redis has forgotten the key.
CREATE TABLE booking_idempotency_keys (
    business_id      uuid NOT NULL REFERENCES businesses (id),
    idempotency_key  bytea NOT NULL,
    -- SHA-256 of the request body: the same key with another body is refused.
    request_hash     bytea NOT NULL,
    booking_id       uuid NOT NULL REFERENCES bookings (id),
    -- The first answer, replayed as it was.
    response         jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_id, idempotency_key)
);
