-- Reminders and client emails a business wants, and the reminders' schedule.

-- [{"before_minutes": 1440}, ...]: when before each booking a reminder goes out.
ALTER TABLE businesses ADD COLUMN reminders jsonb NOT NULL DEFAULT '[]';
-- Which emails its clients get (notify-service sends them from the events).
ALTER TABLE businesses ADD COLUMN client_emails text[] NOT NULL
    DEFAULT '{confirmation,cancellation,reschedule,reminder}';

-- One row per booking, reminder and start time: written in the same transaction as the
-- booking change that makes it due (or no longer due), and claimed when due with
-- FOR UPDATE SKIP LOCKED by whichever booking-service replica gets there first; the
-- claim marks it fired and writes its booking.reminder event to the outbox, in one
-- transaction. A reschedule re-arms the reminders for the new start time.
CREATE TABLE reminder_schedule (
    booking_id      uuid NOT NULL REFERENCES bookings (id),
    business_id     uuid NOT NULL,
    before_minutes  integer NOT NULL CHECK (before_minutes > 0),
    starts_at       timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    fired_at        timestamptz,
    event_id        uuid,
    PRIMARY KEY (booking_id, before_minutes, starts_at)
);
CREATE INDEX reminder_schedule_due_idx ON reminder_schedule (due_at) WHERE fired_at IS NULL;
