"""The local stack: real PostgreSQL, Redis and NATS from pip packages, and the services.

Used by `make run` (`calendence-stack`) and by the test session, so both run the same way.
"""
