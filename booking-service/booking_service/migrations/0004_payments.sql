-- Deposits: one Stripe Checkout Session per booking that needs one.
CREATE TABLE payments (
    booking_id           uuid PRIMARY KEY REFERENCES bookings (id),
    checkout_session_id  text NOT NULL UNIQUE,
    status               text NOT NULL
        CHECK (status IN ('requires_payment', 'paid', 'expired')),
    amount               bigint NOT NULL CHECK (amount > 0),
    currency             char(3) NOT NULL,
    checkout_url         text NOT NULL,
    -- When Stripe stops taking payment; the sweeper cancels unpaid bookings after it.
    expires_at           timestamptz NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_unpaid_idx ON payments (expires_at) WHERE status = 'requires_payment';

-- Stripe events already handled: Stripe delivers at least once, we act at most once.
CREATE TABLE stripe_events (
    id           text PRIMARY KEY,
    type         text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
