-- A booking may also be cancelled by the platform itself (an unpaid deposit's checkout
-- expired), besides the business and the client.
ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_cancelled_by_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_cancelled_by_check
    CHECK (cancelled_by IN ('business', 'client', 'system'));
