-- Bookings released (cancelled, no-show) by when: at start-up booking-service frees in
-- Redis the slots of those released lately, which a process that died between a
-- release's commit and freeing its slot left claimed (`Sweeps.free_released_claims`).
CREATE INDEX bookings_released_idx ON bookings (updated_at)
    WHERE status IN ('cancelled', 'no_show');
