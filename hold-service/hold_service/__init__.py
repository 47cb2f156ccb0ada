"""hold-service: short-lived holds on slots, kept in Redis."""
