"""gateway: the public REST API; authenticates keys and routes to services over gRPC."""
