-- The catalogue bookings are made against. Rows are soft-deleted (deleted_at) so a
-- booking made against them keeps its details.
CREATE TABLE locations (
    id             uuid PRIMARY KEY,
    business_id    uuid NOT NULL REFERENCES businesses (id),
    name           text NOT NULL,
    address        text,
    timezone       text NOT NULL,
    opening_hours  jsonb NOT NULL,
    seq            bigserial UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE INDEX locations_business_idx ON locations (business_id, seq) WHERE deleted_at IS NULL;

CREATE TABLE services (
    id                uuid PRIMARY KEY,
    business_id       uuid NOT NULL REFERENCES businesses (id),
    name              text NOT NULL,
    duration_minutes  integer NOT NULL CHECK (duration_minutes > 0),
    price_amount      bigint NOT NULL CHECK (price_amount >= 0),
    currency          char(3) NOT NULL,
    deposit_amount    bigint NOT NULL DEFAULT 0 CHECK (deposit_amount >= 0),
    buffer_minutes    integer NOT NULL DEFAULT 0 CHECK (buffer_minutes >= 0),
    active            boolean NOT NULL DEFAULT true,
    location_ids      uuid[] NOT NULL,
    seq               bigserial UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz
);
CREATE INDEX services_business_idx ON services (business_id, seq) WHERE deleted_at IS NULL;

CREATE TABLE staff (
    id            uuid PRIMARY KEY,
    business_id   uuid NOT NULL REFERENCES businesses (id),
    name          text NOT NULL,
    email         text,
    service_ids   uuid[] NOT NULL,
    location_ids  uuid[] NOT NULL,
    weekly_hours  jsonb,
    seq           bigserial UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
CREATE INDEX staff_business_idx ON staff (business_id, seq) WHERE deleted_at IS NULL;

CREATE TABLE custom_fields (
    id           uuid PRIMARY KEY,
    business_id  uuid NOT NULL REFERENCES businesses (id),
    key          text NOT NULL,
    label        text NOT NULL,
    type         text NOT NULL CHECK (type IN ('text', 'number', 'boolean', 'select')),
    required     boolean NOT NULL DEFAULT false,
    options      text[] NOT NULL,
    seq          bigserial UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
CREATE INDEX custom_fields_business_idx ON custom_fields (business_id, seq) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX custom_fields_key_idx ON custom_fields (business_id, key) WHERE deleted_at IS NULL;
