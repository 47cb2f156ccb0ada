-- Bookings, and the outbox their events leave through.
CREATE TABLE bookings (
    id                   uuid PRIMARY KEY,
    business_id          uuid NOT NULL REFERENCES businesses (id),
    service_id           uuid NOT NULL REFERENCES services (id),
    location_id          uuid NOT NULL REFERENCES locations (id),
    staff_id             uuid REFERENCES staff (id),
    -- What cannot be double-booked: the staff member, or location+service without staff.
    resource_id          text NOT NULL,
    hold_id              uuid UNIQUE,
    status               text NOT NULL
        CHECK (status IN ('pending', 'confirmed', 'in_progress', 'completed', 'cancelled')),
    starts_at            timestamptz NOT NULL,
    ends_at              timestamptz NOT NULL,
    -- ends_at plus the service's buffer: the interval nobody else may take.
    blocked_until        timestamptz NOT NULL,
    client_first_name    text NOT NULL,
    client_last_name     text NOT NULL,
    client_email         text NOT NULL,
    client_phone         text,
    custom_field_values  jsonb NOT NULL DEFAULT '[]',
    notes                text CHECK (char_length(notes) <= 1000),
    seq                  bigserial UNIQUE,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    cancelled_at         timestamptz,
    CHECK (starts_at < ends_at AND ends_at <= blocked_until),
    -- The last line against double booking, whatever happened to the holds in Redis.
    CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
        resource_id WITH =,
        tstzrange(starts_at, blocked_until) WITH &&
    ) WHERE (status IN ('pending', 'confirmed', 'in_progress'))
);
CREATE INDEX bookings_business_idx ON bookings (business_id, seq);
CREATE INDEX bookings_business_start_idx ON bookings (business_id, starts_at);

CREATE TABLE outbox (
    id            uuid PRIMARY KEY,
    seq           bigserial UNIQUE,
    type          text NOT NULL,
    business_id   uuid NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (seq) WHERE published_at IS NULL;

