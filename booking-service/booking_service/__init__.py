"""booking-service: owns PostgreSQL (hubs, businesses, keys, catalogue, bookings, outbox)."""
