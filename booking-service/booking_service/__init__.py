"""booking-service: owns PostgreSQL (tenancy, keys, catalogue, bookings, outbox)."""
