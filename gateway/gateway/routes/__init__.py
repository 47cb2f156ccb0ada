"""HTTP routes, one module per area of the public API."""
