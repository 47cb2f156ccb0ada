-- Clients manage their own bookings through a signed link (no per-booking secret is
-- stored): the keys that sign manage links, newest first; retired keys stop verifying.
CREATE TABLE manage_link_keys (
    id          smallint PRIMARY KEY,
    secret      bytea NOT NULL CHECK (length(secret) >= 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);

-- Who cancelled and why. IF NOT EXISTS: the booking policy may add these first.
ALTER TABLE bookings ADD COLUMN IF NOT EXISTS cancellation_reason text
    CHECK (char_length(cancellation_reason) <= 1000);
ALTER TABLE bookings ADD COLUMN IF NOT EXISTS cancelled_by text;

-- A staff member's secret calendar feed; making it again replaces (rotates) the token.
CREATE TABLE calendar_feeds (
    staff_id     uuid PRIMARY KEY REFERENCES staff (id),
    business_id  uuid NOT NULL REFERENCES businesses (id),
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bookings_staff_start_idx ON bookings (staff_id, starts_at);
