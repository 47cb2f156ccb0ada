-- Emails to clients: one per booking event that calls for one, and every send attempt.
CREATE TABLE client_messages (
    id               uuid PRIMARY KEY,
    seq              bigserial UNIQUE,
    -- One message per event, however often JetStream delivers it.
    event_id         uuid NOT NULL UNIQUE REFERENCES event_receipts (event_id),
    business_id      uuid NOT NULL,
    booking_id       uuid NOT NULL,
    kind             text NOT NULL
        CHECK (kind IN ('confirmation', 'cancellation', 'reschedule', 'reminder')),
    channel          text NOT NULL DEFAULT 'email',
    recipient        text NOT NULL,
    subject          text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'failed')),
    attempt_count    integer NOT NULL DEFAULT 0,
    -- When the next attempt is due; while one runs, when its lease runs out.
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_token      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX client_messages_due_idx ON client_messages (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX client_messages_booking_idx ON client_messages (business_id, booking_id, seq);

CREATE TABLE client_message_attempts (
    message_id    uuid NOT NULL REFERENCES client_messages (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    attempted_at  timestamptz NOT NULL,
    error         text,
    PRIMARY KEY (message_id, attempt)
);
