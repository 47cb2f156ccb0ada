-- Every event taken in from JetStream, once, whatever JetStream redelivered.
CREATE TABLE event_receipts (
    event_id     uuid PRIMARY KEY,
    type         text NOT NULL,
    business_id  uuid NOT NULL,
    payload      jsonb NOT NULL,
    deliveries   integer NOT NULL DEFAULT 1,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_receipts_business_idx ON event_receipts (business_id, received_at);
