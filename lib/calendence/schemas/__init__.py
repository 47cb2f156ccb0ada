"""Request and resource schemas: the one definition the gateway validates with, booking-
service re-checks with, and the OpenAPI document is built from."""
