-- Tenancy: hubs own businesses; keys authenticate as a hub, a business or a session.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE hubs (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE businesses (
    id           uuid PRIMARY KEY,
    hub_id       uuid REFERENCES hubs (id),
    name         text NOT NULL,
    success_url  text,
    cancel_url   text,
    seq          bigserial UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX businesses_hub_idx ON businesses (hub_id, seq);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('hub', 'business', 'session')),
    -- SHA-256 of the secret; the secret itself is never stored.
    key_hash      bytea NOT NULL UNIQUE,
    -- The first characters of the secret, so a person can tell keys apart.
    display_prefix text NOT NULL,
    name          text,
    hub_id        uuid REFERENCES hubs (id),
    business_id   uuid REFERENCES businesses (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    CHECK ((kind = 'hub') = (business_id IS NULL)),
    CHECK (kind <> 'hub' OR hub_id IS NOT NULL)
);
CREATE INDEX api_keys_business_idx ON api_keys (business_id);
