-- Scheduling rules beyond weekly hours: booking policies, time off and closures.

-- The business's rules, complete (every field present); a service's own rules name only
-- what they change (null: follow the business). A booking keeps the merged rules it
-- was made under.
ALTER TABLE businesses ADD COLUMN booking_policy jsonb NOT NULL DEFAULT
    '{"min_notice_minutes": 0, "max_advance_days": 365, "slot_step_minutes": 15,
      "client_cancel_cutoff_minutes": 0, "client_reschedule_cutoff_minutes": 0}';
ALTER TABLE services ADD COLUMN booking_policy jsonb NOT NULL DEFAULT '{}';

-- A staff member away, or a location closed: exactly one of the two.
CREATE TABLE time_off (
    id           uuid PRIMARY KEY,
    business_id  uuid NOT NULL REFERENCES businesses (id),
    staff_id     uuid REFERENCES staff (id),
    location_id  uuid REFERENCES locations (id),
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    reason       text CHECK (char_length(reason) <= 500),
    seq          bigserial UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((staff_id IS NULL) <> (location_id IS NULL)),
    CHECK (starts_at < ends_at AND ends_at <= starts_at + interval '366 days')
);
CREATE INDEX time_off_business_idx ON time_off (business_id, seq);
CREATE INDEX time_off_business_end_idx ON time_off (business_id, ends_at);

-- Versions, the policy in force, no-shows and why a booking was cancelled.
ALTER TABLE bookings ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE bookings ADD COLUMN policy jsonb;
ALTER TABLE bookings ADD COLUMN cancellation_reason text
    CHECK (char_length(cancellation_reason) <= 500);
ALTER TABLE bookings ADD COLUMN cancelled_by text CHECK (cancelled_by IN ('business', 'client'));
ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_status_check CHECK (
    status IN ('pending', 'confirmed', 'in_progress', 'completed', 'cancelled', 'no_show'));
