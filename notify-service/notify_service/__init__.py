"""notify-service: consumes domain events from JetStream and delivers webhooks."""
